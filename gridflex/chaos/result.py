"""One row of the chaos table: what a scenario did, the figures it measured, and its verdict."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.table import Table

__all__ = ["Result", "table"]


@dataclass
class Result:
    """A scenario's outcome: `ok` only when every figure is what "done" asks for."""

    scenario: str
    what: str  # the chaos applied, in words ("broker SIGKILL 5x in 600 s")
    figures: dict[str, str | int | float] = field(default_factory=dict)
    ok: bool = False
    wall_s: float = 0.0
    note: str = ""
    skipped: bool = False  # a hook not wired yet: shown as SKIP, never as PASS

    @property
    def verdict(self) -> str:
        """PASS, FAIL or SKIP."""
        return "SKIP" if self.skipped else ("PASS" if self.ok else "FAIL")

    def figure_text(self) -> str:
        """The figures as `name value` pairs, in insertion order."""
        return ", ".join(
            f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.figures.items()
        )


def table(results: list[Result], title: str) -> Table:
    """The rich table the CLI prints (and docs/reliability.md holds)."""
    t = Table(title=title, show_lines=True)
    t.add_column("scenario", no_wrap=True)
    t.add_column("chaos")
    t.add_column("figures")
    t.add_column("wall s", justify="right")
    t.add_column("verdict", no_wrap=True)
    for r in results:
        colour = {"PASS": "green", "FAIL": "red", "SKIP": "yellow"}[r.verdict]
        verdict = f"[{colour}]{r.verdict}[/{colour}]"
        t.add_row(
            r.scenario,
            r.what,
            r.figure_text() + (f"\n{r.note}" if r.note else ""),
            f"{r.wall_s:.0f}",
            verdict,
        )
    return t


def markdown(results: list[Result]) -> str:
    """The same table in Markdown (for docs/reliability.md and `--out`)."""
    lines = ["| scenario | chaos | figures | wall s | verdict |", "|---|---|---|---:|---|"]
    for r in results:
        figs = r.figure_text() + (f" ({r.note})" if r.note else "")
        lines.append(f"| {r.scenario} | {r.what} | {figs} | {r.wall_s:.0f} | {r.verdict} |")
    return "\n".join(lines) + "\n"
