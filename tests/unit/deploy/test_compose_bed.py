"""The compose bed's runner names what a machine lacks, so its slow test skips with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridflex.ops.compose_bed import BedReport, compose_command, missing_tools


def test_a_machine_without_docker_tools_is_told_each_missing_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no docker, dockerd, compose, debootstrap
    monkeypatch.delenv("GRIDFLEX_BASE", raising=False)
    assert compose_command() is None
    missing = missing_tools()
    assert missing[0] == "docker" and "dockerd" in missing
    assert "docker compose v2 or docker-compose v1.29" in missing
    assert any(m.startswith("debootstrap") for m in missing)
    monkeypatch.setenv("GRIDFLEX_BASE", "gridflex-base:bookworm")  # a base given: debootstrap not needed
    assert not any(m.startswith("debootstrap") for m in missing_tools())


def test_the_report_prints_every_step_and_the_checks() -> None:
    report = BedReport(sites=2, compose="docker-compose")
    report.steps_s = {"up -d": 38.3}
    report.samples_by_site = {"b001": 4, "b002": 5}
    report.acks_by_status = {"applied": 2}
    report.sites_after_restart = 2
    lines = report.lines()
    assert lines[0] == "compose: docker-compose; 2 sites"
    assert "  up -d: 38.3 s" in lines
    assert "  telemetry stored for 2 sites, 9 samples" in lines
    assert "  after the broker restart: telemetry stored again for 2 sites" in lines
