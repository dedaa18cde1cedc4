"""docs/simulators.md carries the register maps the servers actually serve."""

from __future__ import annotations

from pathlib import Path

from simulators.modbus.doc import register_tables

DOC = Path(__file__).resolve().parents[3] / "docs" / "simulators.md"


def test_register_tables_in_docs_match_the_served_maps() -> None:
    text = DOC.read_text()
    start = text.index("<!-- registers:start -->") + len("<!-- registers:start -->\n")
    end = text.index("\n<!-- registers:end -->")
    assert text[start:end] == register_tables(), "regenerate with simulators.modbus.doc.register_tables()"
