"""`gridflex schema --out DIR` writes one valid JSON Schema per message of the contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from jsonschema import Draft202012Validator

from protocols.codec import MODEL_BY_KIND
from protocols.examples import examples


def test_schema_command_writes_valid_schemas(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gridflex", "schema", "--out", str(tmp_path)], capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr.decode()
    files = sorted(p.name for p in tmp_path.glob("*.schema.json"))
    assert files == sorted(f"{m.__name__}.schema.json" for m in MODEL_BY_KIND.values())
    for _, msg in examples():
        schema = json.loads((tmp_path / f"{type(msg).__name__}.schema.json").read_text())
        Draft202012Validator.check_schema(schema)
        Draft202012Validator(schema).validate(json.loads(msg.model_dump_json()))


def test_help_lists_the_core_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gridflex", "--help"], capture_output=True, timeout=60, text=True
    )
    assert result.returncode == 0
    for command in ("schema", "broker", "bench"):
        assert command in result.stdout
