"""A sweep's outputs: the table (`sweep.json`, `sweep.md`) and the resolved share over the sweep (PNG).

The table has one row per point: its overrides, then per stress level the 2030
no-control load violations and the share of them each controlled scenario resolves.
The figure draws that share against the first swept key, one line per combination of
the other keys, one panel per stress level, with the paper's "up to 90 %" for ProA+ProB
as a guide.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cloud_controller.study.report import LABELS
from cloud_controller.study.sweep import SweepAxis

__all__ = ["figure_sweep", "sweep_markdown", "write_sweep_table"]

UNCONTROLLED = ("status_quo", "no_control")
PAPER_PROA_PROB_PCT = 90.0  # the Schutterwald study: ProA+ProB "resolve up to 90 %" (critical grid)


def _controlled(rows: Sequence[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for table in row["results"].values():
            seen.update((sc, None) for sc in table if sc not in UNCONTROLLED)
    return list(seen)


def _cell(value: Any) -> str:
    return "–" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))


def sweep_markdown(rows: Sequence[dict[str, Any]], axes: Sequence[SweepAxis]) -> str:
    """The sweep table as markdown: overrides | per stress: no-control violations, resolved % per scenario."""
    stresses = list(rows[0]["results"]) if rows else []
    scenarios = _controlled(rows)
    head = [a.key for a in axes]
    for st in stresses:
        head.append(f"{st}: no-control viol.")
        head += [f"{st}: {LABELS.get(sc, sc)} resolved %" for sc in scenarios]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [_cell(row["overrides"][a.key]) for a in axes]
        for st in stresses:
            table = row["results"][st]
            cells.append(_cell(table["no_control"]["load_violations"]))
            cells += [_cell(table.get(sc, {}).get("load_violations_resolved_pct")) for sc in scenarios]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_sweep_table(rows: Sequence[dict[str, Any]], axes: Sequence[SweepAxis], out: Path) -> list[Path]:
    """`sweep.json` (axes and rows) and `sweep.md` in `out`."""
    js = out / "sweep.json"
    md = out / "sweep.md"
    doc = {"axes": [{"key": a.key, "values": list(a.values)} for a in axes], "points": list(rows)}
    js.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    md.write_text(sweep_markdown(rows, axes), encoding="utf-8")
    return [js, md]


def figure_sweep(
    rows: Sequence[dict[str, Any]], axes: Sequence[SweepAxis], out: Path, *, scenario: str = "stor_proa_prob"
) -> Path:
    """`sweep_resolved.png`: the share of load violations `scenario` (and Stor, dashed) resolves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stresses = list(rows[0]["results"])
    x_axis, others = axes[0], axes[1:]
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in x_axis.values)
    xs = list(x_axis.values) if numeric else list(range(len(x_axis.values)))
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row["overrides"][a.key] for a in others), []).append(row)
    fig, panels = plt.subplots(
        1, len(stresses), figsize=(max(5.0, 4.2 * len(stresses)), 4.4), sharey=True, squeeze=False
    )
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    handles: dict[str, Any] = {}
    for ax, st in zip(panels[0], stresses, strict=True):
        for n, (label_values, group) in enumerate(groups.items()):
            colour = colours[n % len(colours)]
            label = ", ".join(f"{a.key}={_cell(v)}" for a, v in zip(others, label_values, strict=True))
            by_x = {row["overrides"][x_axis.key]: row["results"][st] for row in group}
            for sc, style in ((scenario, "-o"), ("stor", "--")):
                ys = [by_x.get(v, {}).get(sc, {}).get("load_violations_resolved_pct") for v in x_axis.values]
                if all(y is None for y in ys):
                    continue
                (line,) = ax.plot(xs, [float("nan") if y is None else y for y in ys], style, color=colour)
                if sc == scenario:
                    handles.setdefault(label or LABELS.get(sc, sc), line)
        ax.axhline(PAPER_PROA_PROB_PCT, color="grey", lw=0.8, ls=":")
        ax.set_title(f"{st} grid")
        ax.set_xlabel(x_axis.key)
        if not numeric:
            ax.set_xticks(xs, [_cell(v) for v in x_axis.values])
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    panels[0][0].set_ylabel("load violations resolved (%)")
    rows_of_legend = -(-len(handles) // 3)
    fig.legend(
        list(handles.values()), list(handles), loc="lower center", ncol=min(3, len(handles)), fontsize=7
    )
    fig.suptitle(
        f"2030 load violations resolved: solid {LABELS.get(scenario, scenario)}, dashed Stor,"
        f" dotted the paper's {PAPER_PROA_PROB_PCT:g} %",
        fontsize=9,
    )
    fig.tight_layout(rect=(0.0, 0.05 + 0.045 * rows_of_legend, 1.0, 1.0))
    png = out / "sweep_resolved.png"
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return png
