"""JSON log lines are one parseable object per record, exceptions included."""

from __future__ import annotations

import json
import logging

from edge_agent.health import JsonFormatter


def test_json_log_line() -> None:
    record = logging.LogRecord(
        "edge_agent.poller", logging.WARNING, __file__, 1, "device %s fault", ("pv",), None
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "WARNING" and line["logger"] == "edge_agent.poller"
    assert line["msg"] == "device pv fault" and line["ts"].endswith("+00:00")
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert "ValueError: boom" in json.loads(JsonFormatter().format(record))["exc"]
