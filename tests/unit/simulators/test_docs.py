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


def test_bacnet_table_in_docs_lists_the_bms_template_objects() -> None:
    from device_templates import builtin

    text = DOC.read_text()
    section = text[text.index("## BACnet/IP BMS") : text.index("## Device templates")]
    rows = [
        line.split("|")[1:3]
        for line in section.splitlines()
        if line.startswith("| analog") or line.startswith("| binary")
    ]
    documented = {(obj.strip(), name.strip()) for obj, name in rows}
    assert documented == {(o.object, o.name) for o in builtin("bacnet-bms").objects}
