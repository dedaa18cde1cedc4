"""`deploy/grafana/gridflex-dashboard.json` against the controller's real `/metrics`: every metric a
panel queries exists in the exposition, and every family the controller exports is on a panel.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from cloud_controller.api import create_app
from tests.unit.web.test_api import _controller

DASHBOARD = Path(__file__).parents[3] / "deploy" / "grafana" / "gridflex-dashboard.json"
METRIC = re.compile(r"\bgridflex_[a-z0-9_]+")
#: what a histogram family's samples are called
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def _targets(doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in doc["panels"]:
        for target in panel["targets"]:
            yield panel["title"], target["expr"]


def _exposition(tmp_path: Path) -> tuple[set[str], set[str]]:
    """(sample names, family names) of a controller's /metrics."""
    ctl = _controller(tmp_path)
    try:
        with TestClient(create_app(ctl)) as c:
            text = c.get("/metrics").text
    finally:
        ctl.store.close()
    families = list(text_string_to_metric_families(text))
    return {s.name for f in families for s in f.samples}, {f.name for f in families}


def test_every_metric_the_dashboard_queries_is_exported_and_every_family_is_charted(tmp_path: Path) -> None:
    doc = json.loads(DASHBOARD.read_text())
    samples, families = _exposition(tmp_path)
    queried = {(title, name) for title, expr in _targets(doc) for name in METRIC.findall(expr)}
    assert queried
    missing = sorted((title, name) for title, name in queried if name not in samples)
    assert missing == []
    charted = {
        name.removesuffix(suffix) for _, name in queried for suffix in SUFFIXES if name.endswith(suffix)
    }
    charted |= {name for _, name in queried}
    uncharted = sorted(families - charted)
    assert uncharted == []


def test_dashboard_is_importable_as_is() -> None:
    doc = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    assert doc["uid"] == "gridflex-controller" and doc["templating"]["list"][0]["type"] == "datasource"
    for panel in doc["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
