"""The InfluxQL history query and its reply parsing, pure: escaping, windows, errors never empty."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from cloud_controller.config import StoreConfig
from cloud_controller.store.influx_history import (
    InfluxHistory,
    InfluxHistoryError,
    history_query,
    influxql_string,
    parse_history_reply,
)
from protocols.assets import PointKey

T0 = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
T1 = datetime(2030, 1, 15, 13, 0, tzinfo=UTC)


def test_string_literals_are_escaped_so_a_name_cannot_end_the_query() -> None:
    assert influxql_string("b1") == "'b1'"
    assert influxql_string("x' OR '1'='1") == "'x\\' OR \\'1\\'=\\'1'"
    assert influxql_string("a\\") == "'a\\\\'"
    q = history_query("x' OR '1'='1", T0, T1, None, max_rows=10)
    # the whole name stays one literal: the only unescaped quotes are the literals' own
    assert q.count("'") - q.count("\\'") == 4  # 'x...1' and 'good'


def test_query_selects_good_samples_of_the_window_and_points_oldest_first() -> None:
    q = history_query("b1", T0, T1, [PointKey("meter", "p_kw"), PointKey("bat1", "soc_pct")], max_rows=500)
    assert f"time >= {int(T0.timestamp() * 1000)}ms" in q and f"time < {int(T1.timestamp() * 1000)}ms" in q
    assert "\"quality\" = 'good'" in q and "\"site\" = 'b1'" in q
    assert "(\"asset\" = 'meter' AND \"point\" = 'p_kw') OR (\"asset\" = 'bat1'" in q
    assert q.endswith('GROUP BY "asset", "point" ORDER BY time ASC LIMIT 500')
    with pytest.raises(ValueError, match="time zone"):
        history_query("b1", T0.replace(tzinfo=None), T1, None, max_rows=1)


def test_reply_is_parsed_per_series_and_asked_points_are_present_even_empty() -> None:
    body = {
        "results": [
            {
                "statement_id": 0,
                "series": [
                    {
                        "name": "telemetry",
                        "tags": {"asset": "meter", "point": "p_kw"},
                        "columns": ["time", "value"],
                        "values": [[int(T0.timestamp() * 1000), 1.5], [int(T1.timestamp() * 1000), None]],
                    }
                ],
            }
        ]
    }
    got = parse_history_reply(body, [PointKey("meter", "p_kw"), PointKey("bat1", "soc_pct")])
    assert got == {PointKey("meter", "p_kw"): [(T0, 1.5)], PointKey("bat1", "soc_pct"): []}


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"error": "database not found: gf"}, "unexpected reply"),
        ({"results": [{"statement_id": 0, "error": "database not found: gf"}]}, "database not found"),
        ({"results": [], "error": "boom"}, "boom"),
        ([1, 2], "unexpected reply"),
        (
            {"results": [{"series": [{"tags": {}, "columns": ["time", "value", "seq"], "values": []}]}]},
            "unexpected columns",
        ),
    ],
)
def test_an_error_in_the_reply_is_raised_never_an_empty_history(body: object, match: str) -> None:
    with pytest.raises(InfluxHistoryError, match=match):
        parse_history_reply(body, None)


def test_an_unreachable_influxdb_is_an_error_naming_it() -> None:
    from gridflex.ops.broker import free_port

    url = f"http://127.0.0.1:{free_port()}"
    history = InfluxHistory(url, database="gf", timeout_s=2.0)
    try:
        with pytest.raises(InfluxHistoryError, match="unreachable"):
            history.read_history("b1", T0, T1)
    finally:
        history.close()


def test_store_config_says_what_influxdb_history_and_writes_need() -> None:
    assert StoreConfig.model_validate({"kind": "influxdb", "api": "v1"}).influx_database == "telemetry"
    assert (
        StoreConfig.model_validate({"kind": "influxdb", "api": "v1", "database": "gf"}).influx_database
        == "gf"
    )
    with pytest.raises(ValidationError, match="needs token_file"):
        StoreConfig.model_validate({"kind": "influxdb"})  # v2 needs a token
    with pytest.raises(ValidationError, match=r"needs store\.kind influxdb"):
        StoreConfig.model_validate({"history": "influxdb"})
