"""The UFTP bench at a tiny size: every round trip completes (signed both ways) and the figures are ordered."""

from __future__ import annotations

from gridflex.bench.uftp import uftp_figures


def test_uftp_bench_round_trips_complete_and_p99_is_not_below_p50() -> None:
    fig = uftp_figures(5)
    assert fig.n == 5 and fig.request_bytes > 500
    assert 0 < fig.uftp_p50_ms <= fig.uftp_p99_ms
    assert 0 < fig.post_p50_ms <= fig.post_p99_ms
