"""`--only` of the bench commands: repeatable or comma list, known parts only, in a stated order."""

from __future__ import annotations

import pytest
import typer

from gridflex.bench import DISPATCH_PARTS, parse_parts


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, ("rundcopp", "step", "mpc")),
        ([], ("rundcopp", "step", "mpc")),
        (["mpc"], ("mpc",)),
        (["mpc,rundcopp"], ("rundcopp", "mpc")),
        (["step", "mpc", "step"], ("step", "mpc")),
    ],
    ids=["default", "empty", "one", "comma-list", "repeated"],
)
def test_parts_in_the_bench_order(given: list[str] | None, expected: tuple[str, ...]) -> None:
    assert parse_parts(given, DISPATCH_PARTS) == expected


def test_an_unknown_part_names_the_known_ones() -> None:
    with pytest.raises(typer.BadParameter, match=r"unknown part\(s\) foo; known: rundcopp, step, mpc"):
        parse_parts(["step,foo"], DISPATCH_PARTS)
