"""The network as something to draw: bus coordinates, lines grouped by station, transformers as points.

Why grouped by station: the loading the controller knows per element is per transformer
(the HV/MV one from every plan, each MV/LV station from the scenario forecast), so a
line is coloured by the station that feeds it. Coordinates come from pandapower's bus
geodata (GeoJSON points) where every drawn bus has one; otherwise a one-line layout is
generated from the radial tree (depth down, leaves spread across), so any network draws.
Pure: a Region in, a JSON-ready dict out; the web layer caches it (the net does not change).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from cloud_controller.grid import Region

__all__ = ["MV_GROUP", "generated_drawing", "network_drawing"]

MV_GROUP = "mv"  # lines above every MV/LV station (coloured by the HV/MV transformer)


def _geo_xy(value: Any) -> tuple[float, float] | None:
    """Pandapower 3 stores a bus position as a GeoJSON Point string; anything else is 'no position'."""
    if not isinstance(value, str):
        return None
    try:
        doc = json.loads(value)
        x, y = doc["coordinates"][:2]
        return (float(x), float(y)) if math.isfinite(x) and math.isfinite(y) else None
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def _tree_layout(region: Region) -> list[tuple[float, float]]:
    """One-line layout of the radial tree: y = -depth, x = leaf order (parents centred over children).

    A meshed region's grid (`DcGrid`) is laid out along a spanning tree: a bus is placed
    below the first bus that reaches it (without that, a loop would walk forever).
    """
    grid = region.grid
    children: dict[int, list[int]] = {}
    for k in range(grid.n_branch):
        children.setdefault(int(grid.parent[k]), []).append(int(grid.child[k]))
    xy = [(0.0, 0.0)] * grid.n_bus
    next_leaf = 0.0
    seen = {grid.root}
    tree: dict[int, list[int]] = {}
    # iterative post-order: a bus is placed once all its children are
    stack: list[tuple[int, int, bool]] = [(grid.root, 0, False)]
    while stack:
        bus, depth, expanded = stack.pop()
        if not expanded:
            kids = tree[bus] = [c for c in dict.fromkeys(children.get(bus, [])) if c not in seen]
            seen.update(kids)
            if not kids:
                xy[bus] = (next_leaf, -float(depth))
                next_leaf += 1.0
                continue
            stack.append((bus, depth, True))
            stack.extend((c, depth + 1, False) for c in reversed(kids))
        else:
            xs = [xy[c][0] for c in tree[bus]]
            xy[bus] = ((min(xs) + max(xs)) / 2.0, -float(depth))
    return xy


def _positions(region: Region) -> tuple[list[tuple[float, float]], str]:
    net = region.net
    geo = net.bus["geo"] if "geo" in net.bus.columns else None
    if geo is not None:
        pts = [_geo_xy(geo.get(int(b))) for b in region.grid.bus_ids]
        known = [p for p in pts if p is not None]
        if known and len(known) >= 0.9 * len(pts):
            # buses without a position (e.g. the HV bus made for the region) sit beside their child
            return _fill_missing(region, pts), "geodata"
    return _tree_layout(region), "generated"


def _fill_missing(region: Region, pts: list[tuple[float, float] | None]) -> list[tuple[float, float]]:
    grid = region.grid
    known = [p for p in pts if p is not None]
    dy = 0.02 * (max(y for _, y in known) - min(y for _, y in known) or 1.0)
    out = list(pts)
    for _ in range(3):  # a missing bus takes its first placed neighbour's position, shifted up
        for k in range(grid.n_branch):
            p, c = int(grid.parent[k]), int(grid.child[k])
            if out[p] is None and out[c] is not None:
                cx, cy = out[c]  # type: ignore[misc]
                out[p] = (cx, cy + dy)
            if out[c] is None and out[p] is not None:
                px, py = out[p]  # type: ignore[misc]
                out[c] = (px, py - dy)
    cx = sum(x for x, _ in known) / len(known)
    cy = sum(y for _, y in known) / len(known)
    return [p if p is not None else (cx, cy) for p in out]


def _branch_group(region: Region) -> list[str]:
    """The station each branch belongs to (its own MV/LV transformer included); MV_GROUP above them."""
    grid = region.grid
    children: dict[int, list[int]] = {}
    for k in range(grid.n_branch):
        children.setdefault(int(grid.parent[k]), []).append(k)
    group = [MV_GROUP] * grid.n_branch
    for station, branch in region.station_branch.items():
        stack = [branch]
        while stack:
            k = stack.pop()
            group[k] = station
            stack.extend(children.get(int(grid.child[k]), []))
    if region.hvmv_branch is not None:
        group[region.hvmv_branch] = "hvmv"
    return group


def network_drawing(region: Region) -> dict[str, Any]:
    """Lines as x/y polylines per group (None between segments, as plotly draws gaps) plus transformers."""
    grid = region.grid
    xy, source = _positions(region)
    group = _branch_group(region)
    lines: dict[str, dict[str, list[float | None]]] = {}
    trafos: list[dict[str, Any]] = []
    for k, name in enumerate(grid.branch_names):
        p, c = int(grid.parent[k]), int(grid.child[k])
        if name.startswith("trafo:"):
            element = group[k] if group[k] != MV_GROUP else name
            x, y = xy[c]
            trafos.append({"element": element, "branch": name, "x": round(x, 7), "y": round(y, 7)})
            if k == region.hvmv_branch:
                continue
            group[k] = MV_GROUP  # a station's transformer is drawn as its link to the MV side
        seg = lines.setdefault(group[k], {"x": [], "y": []})
        seg["x"] += [round(xy[p][0], 7), round(xy[c][0], 7), None]
        seg["y"] += [round(xy[p][1], 7), round(xy[c][1], 7), None]
    return {
        "source": source,
        "lines": [{"group": g, **v} for g, v in sorted(lines.items())],
        "trafos": trafos,
        "n_buses": grid.n_bus,
        "n_lines": sum(1 for n in grid.branch_names if n.startswith("line:")),
    }


def generated_drawing(elements: Sequence[str]) -> dict[str, Any]:
    """Without a network model (a stand-in planner): the HV/MV transformer above one feeder per element."""
    stations = [e for e in elements if e not in ("hvmv", "lines")]
    trafos = [{"element": "hvmv", "branch": "hvmv", "x": max(0.0, (len(stations) - 1) / 2.0), "y": 0.0}]
    lines = []
    for i, station in enumerate(stations):
        trafos.append({"element": station, "branch": station, "x": float(i), "y": -1.0})
        lines.append({"group": station, "x": [float(i), float(i), None], "y": [-1.0, -2.0, None]})
    if stations:
        lines.append({"group": MV_GROUP, "x": [0.0, float(len(stations) - 1), None], "y": [-0.5, -0.5, None]})
    return {"source": "generated", "lines": lines, "trafos": trafos, "n_buses": 0, "n_lines": 0}
