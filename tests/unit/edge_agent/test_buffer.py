"""The SQLite store-and-forward queue: order, seq across restarts, bounds, release, payload bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge_agent.buffer import SampleBuffer, batch_payload
from edge_agent.poller import PendingSample
from protocols.codec import decode, encode
from protocols.messages import TelemetryBatch
from protocols.topics import site_topic

T0 = datetime(2030, 1, 15, tzinfo=UTC)


def _samples(n: int, t: datetime = T0, start: float = 0.0) -> list[PendingSample]:
    return [
        PendingSample("pv1", "p_kw", start + i, "kW", t + timedelta(milliseconds=i), "good", None)
        for i in range(n)
    ]


def test_seq_is_contiguous_and_survives_restart(tmp_path: Path) -> None:
    buf = SampleBuffer(tmp_path / "q.sqlite", max_rows=1000, max_age_s=3600)
    assert buf.append(_samples(5)) == (0, 0)
    assert buf.append(_samples(3)) == (5, 0)
    buf.release_upto(7)  # everything stored by the cloud: queue empty
    assert buf.depth == 0
    buf.close()
    again = SampleBuffer(tmp_path / "q.sqlite", max_rows=1000, max_age_s=3600)
    assert again.next_seq == 8 and again.depth == 0
    assert again.append(_samples(2)) == (8, 0)
    batch = again.read(-1, 10)
    assert batch is not None and (batch.first_seq, batch.last_seq) == (8, 9)
    again.close()


def test_drop_oldest_by_rows_and_age(tmp_path: Path) -> None:
    buf = SampleBuffer(tmp_path / "q.sqlite", max_rows=10, max_age_s=60)
    buf.append(_samples(8))
    _, dropped = buf.append(_samples(5))
    assert dropped == 3 and buf.depth == 10 and buf.min_seq == 3
    _, dropped = buf.append(_samples(1, T0 + timedelta(seconds=120)))
    assert dropped == 10 and buf.depth == 1 and buf.dropped == 13
    batch = buf.read(-1, 100)
    assert batch is not None and batch.first_seq == 13


def test_read_in_order_and_release(tmp_path: Path) -> None:
    buf = SampleBuffer(tmp_path / "q.sqlite", max_rows=1000, max_age_s=3600)
    buf.append(_samples(25))
    seen: list[int] = []
    after = -1
    while (batch := buf.read(after, 10)) is not None:
        seen.extend(range(batch.first_seq, batch.last_seq + 1))
        after = batch.last_seq
    assert seen == list(range(25))
    assert buf.release_upto(9) == 10 and buf.depth == 15
    assert buf.release_upto(3) == 0
    assert buf.release_upto(10_000) == 15 and buf.depth == 0


def test_batch_payload_is_byte_identical_to_the_model(tmp_path: Path) -> None:
    buf = SampleBuffer(tmp_path / "q.sqlite", max_rows=1000, max_age_s=3600)
    samples = _samples(3)
    samples.append(PendingSample("hp1", "t_c", None, "degC", T0, "bad", 'timeout "x"'))
    buf.append(samples)
    batch = buf.read(-1, 100)
    assert batch is not None
    ts = T0 + timedelta(microseconds=123456)
    payload = batch_payload("b001", ts, "abc", batch)
    msg = decode(site_topic("b001", "telemetry"), payload)
    assert isinstance(msg, TelemetryBatch)
    assert [s.seq for s in msg.samples] == [0, 1, 2, 3]
    assert msg.samples[3].quality == "bad" and msg.samples[3].reason == 'timeout "x"'
    assert encode(msg) == payload


def test_renumber_after_a_lost_queue_file(tmp_path: Path) -> None:
    buf = SampleBuffer(tmp_path / "q.sqlite", max_rows=1000, max_age_s=3600)
    buf.append(_samples(3))  # seqs 0..2, but the cloud already stored up to 41 (old install)
    assert buf.renumber_after(1) == 0  # an ordinary watermark: nothing to do
    assert buf.renumber_after(41) == 42
    batch = buf.read(-1, 10)
    assert batch is not None and (batch.first_seq, batch.last_seq) == (42, 44)
    assert TelemetryBatch.model_validate_json(batch_payload("b001", T0, "x", batch)).samples[0].seq == 42
    assert buf.append(_samples(1)) == (45, 0)
    buf.close()
    assert SampleBuffer(tmp_path / "q.sqlite", max_rows=1000, max_age_s=3600).next_seq == 46
