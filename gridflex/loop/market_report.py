"""The market section of the demo's summary: requests, offers, orders, delivery, penalties, payments.

Pure: the market store's rows in, a JSON-able dict and its Markdown out, so the figures are
tested without running a demo.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from gridflex.loop.report import ElementFigures
from protocols.market import ISP_S, MarketOffer, MarketOrder, MarketRequest, MarketSettlement

__all__ = ["against_reference", "market_markdown", "market_section"]

ISP_H = ISP_S / 3600.0


def market_section(
    requests: Sequence[tuple[MarketRequest, str]],
    offers: Sequence[tuple[MarketOffer, str]],
    orders: Sequence[MarketOrder],
    settlements: Sequence[MarketSettlement],
    *,
    not_activated: dict[str, str] | None = None,
    unsettled: Sequence[dict[str, str]] = (),
) -> dict[str, Any]:
    """Requests (kW per ISP, last revision), offers per FSP and status, orders, per-ISP delivery, money."""
    req_isps = {i.start.isoformat(): i.kw for r, _ in requests for i in sorted(r.isps, key=lambda i: i.start)}
    ordered: dict[str, float] = defaultdict(float)
    for o in orders:
        for i in o.isps:
            ordered[i.start.isoformat()] += i.kw
    delivered: dict[str, float] = defaultdict(float)
    for s in settlements:
        for si in s.isps:
            delivered[si.start.isoformat()] += si.delivered_kw
    per_fsp: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for o in orders:
        per_fsp[o.fsp]["ordered_kwh"] += sum(i.kw for i in o.isps) * ISP_H
        per_fsp[o.fsp]["ordered_eur"] += o.price_eur
    for s in settlements:  # the settled orders only: net = price − penalty holds per FSP
        f = per_fsp[s.fsp]
        f["price_eur"] += s.price_eur
        f["delivered_kwh"] += s.delivered_kwh
        f["deficiency_kwh"] += s.deficiency_kwh
        f["penalty_eur"] += s.penalty_eur
        f["net_eur"] += s.net_eur
    return {
        "requests": {
            "count": len(requests),
            "revisions": sum(r.revision for r, _ in requests),
            "status": dict(Counter(s for _, s in requests)),
            "kw_per_isp": req_isps,
        },
        "offers": {
            "count": len(offers),
            "by_fsp_status": dict(Counter(f"{o.fsp}:{s}" for o, s in offers)),
        },
        "orders": {
            "count": len(orders),
            "kw_per_isp": dict(sorted(ordered.items())),
            "kwh": round(sum(ordered.values()) * ISP_H, 3),
            "price_eur": round(sum(o.price_eur for o in orders), 4),
            "not_activated": dict(not_activated or {}),
        },
        "settlement": {
            "settled_orders": len(settlements),
            "unsettled": list(unsettled),
            "ordered_vs_delivered_kw_per_isp": {
                t: {"ordered": round(kw, 2), "delivered": round(delivered.get(t, 0.0), 2)}
                for t, kw in sorted(ordered.items())
                if kw > 0
            },
            "delivered_kwh": round(sum(s.delivered_kwh for s in settlements), 3),
            "deficiency_kwh": round(sum(s.deficiency_kwh for s in settlements), 3),
            "price_eur": round(sum(s.price_eur for s in settlements), 4),
            "penalty_eur": round(sum(s.penalty_eur for s in settlements), 4),
            "net_eur": round(sum(s.net_eur for s in settlements), 4),
        },
        "per_fsp": {f: {k: round(v, 4) for k, v in d.items()} for f, d in sorted(per_fsp.items())},
    }


def against_reference(
    reference: ElementFigures, with_market: ElementFigures, settlement: dict[str, Any]
) -> dict[str, Any]:
    """The market's relief against the same loop without it: kVAh above the rating removed, per euro.

    `reference`: guard-only control with the FSPs' sites unsteered (nobody moves them);
    `with_market`: the same seed and exclusions, plus the orders. Relief per euro is over the
    net paid (price − penalty, the settled orders); None when nothing was paid. A negative
    relief is reported as it is (the market made it worse, or run-to-run noise exceeds it).
    """
    relief = reference.overload_kvah - with_market.overload_kvah
    net = float(settlement["net_eur"])
    delivered = float(settlement["delivered_kwh"])
    return {
        "element": reference.element,
        "reference_kvah": round(reference.overload_kvah, 2),
        "with_market_kvah": round(with_market.overload_kvah, 2),
        "reference_peak_pct": round(reference.peak_loading_pct, 2),
        "with_market_peak_pct": round(with_market.peak_loading_pct, 2),
        "reference_intervals_over": reference.overloaded_intervals,
        "with_market_intervals_over": with_market.overloaded_intervals,
        "relief_kvah": round(relief, 2),
        "net_eur": round(net, 4),
        "relief_kvah_per_eur": round(relief / net, 3) if net > 0 else None,
        "relief_kvah_per_delivered_kwh": round(relief / delivered, 3) if delivered > 0 else None,
    }


def _against_markdown(a: dict[str, Any]) -> list[str]:
    per_eur = "n/a (nothing paid)" if a["relief_kvah_per_eur"] is None else f"{a['relief_kvah_per_eur']:.2f}"
    return [
        "",
        f"Against the same loop without the market (FSP sites unsteered, guard-only control of the rest), {a['element']}:",
        "",
        "| | without the market | with the market |",
        "|---|---|---|",
        f"| peak loading % | {a['reference_peak_pct']:.1f} | {a['with_market_peak_pct']:.1f} |",
        f"| intervals over 100 % | {a['reference_intervals_over']} | {a['with_market_intervals_over']} |",
        f"| kVAh above the rating | {a['reference_kvah']:.1f} | {a['with_market_kvah']:.1f} |",
        "",
        f"- relief {a['relief_kvah']:.1f} kVAh for {a['net_eur']:.2f} EUR net paid: {per_eur} kVAh per EUR",
    ]


def market_markdown(m: dict[str, Any]) -> str:
    """The section as Markdown, appended to summary.md."""
    r, o, st = m["requests"], m["orders"], m["settlement"]
    lines = [
        "",
        "## Market",
        "",
        f"- requests: {r['count']} ({r['revisions']} revisions), status {r['status']}; "
        f"need per ISP (last revision): "
        + ", ".join(f"{t[11:16]} {kw:g} kW" for t, kw in r["kw_per_isp"].items()),
        f"- offers: {m['offers']['count']}: {m['offers']['by_fsp_status']}",
        f"- orders: {o['count']}, {o['kwh']:.2f} kWh for {o['price_eur']:.2f} EUR",
        f"- settled orders: {st['settled_orders']}, delivered {st['delivered_kwh']:.2f} kWh, "
        f"short {st['deficiency_kwh']:.2f} kWh, price {st['price_eur']:.2f} EUR, penalties {st['penalty_eur']:.2f} EUR, "
        f"net paid {st['net_eur']:.2f} EUR",
        "",
        "| ISP (UTC) | ordered kW | delivered kW |",
        "|---|---|---|",
        *(
            f"| {t[11:16]} | {v['ordered']:.1f} | {v['delivered']:.1f} |"
            for t, v in st["ordered_vs_delivered_kw_per_isp"].items()
        ),
        "",
        "Per FSP: ordered (every order) and settled (orders whose ISPs were metered).",
        "",
        "| FSP | ordered kWh | ordered EUR | settled price EUR | delivered kWh | short kWh | penalty EUR | net EUR |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {f} | {d.get('ordered_kwh', 0):.2f} | {d.get('ordered_eur', 0):.2f} | {d.get('price_eur', 0):.2f} | "
            f"{d.get('delivered_kwh', 0):.2f} | {d.get('deficiency_kwh', 0):.2f} | "
            f"{d.get('penalty_eur', 0):.2f} | {d.get('net_eur', 0):.2f} |"
            for f, d in m["per_fsp"].items()
        ),
    ]
    if m.get("against_reference"):
        lines += _against_markdown(m["against_reference"])
    if st.get("estimated_isps"):
        lines += [
            "",
            f"- actual estimated (interpolated: a poll missed) for: {', '.join(st['estimated_isps'])}",
        ]
    if o["not_activated"] or st["unsettled"]:
        lines += ["", f"- not activated: {o['not_activated']}", f"- unsettled: {st['unsettled']}"]
    return "\n".join(lines) + "\n"
