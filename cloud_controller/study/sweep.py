"""Study sweeps: `--sweep KEY=V1,V2,…` parsed into a grid of validated study configs.

Pure: no solver, no cluster. A KEY is a dotted path into `StudyConfig`
(`sizes.battery_kwh`, `mix.reference.ev`, `proa.window_h`); `*` in place of a `mix` role
sets that share at every role (`mix.*.ev`). Every key is checked against the model before
anything runs, so a typo costs nothing: `unknown key 'batery_kwh' (did you mean
'battery_kwh'?)`, as the YAML's own errors read (protocols.config_errors). Values are
parsed to the field's type (numbers stay numbers in the sweep's table and plot), and each
point's whole config is validated by the model, so a share of 1.5 is refused with its key.
"""

from __future__ import annotations

import itertools
import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from cloud_controller.study.config import StudyConfig
from protocols.config_errors import dotted_key, unknown_key_reason
from protocols.errors import ConfigError

__all__ = ["SweepAxis", "SweepPoint", "parse_axis", "sweep_points", "sweep_row"]

WILDCARD = "*"
SOURCE = "--sweep"  # what the errors name as their "file"
Scalar = bool | int | float | str | None


@dataclass(frozen=True)
class SweepAxis:
    """One `--sweep` option: a dotted key and the values it takes, parsed to the field's type."""

    key: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class SweepPoint:
    """One grid point: its index, its overrides (key → value) and the validated study config."""

    index: int
    overrides: Mapping[str, Scalar]
    config: StudyConfig

    @property
    def name(self) -> str:
        """A folder name that says what the point is: `p01_sizes.battery_kwh=16_mix.all.ev=0.3`."""
        parts = [f"{k.replace(WILDCARD, 'all')}={_text(v)}" for k, v in self.overrides.items()]
        return re.sub(r"[^A-Za-z0-9._=-]+", "-", "_".join([f"p{self.index:02d}", *parts]))


def _text(value: Scalar) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _is_scalar(tp: Any) -> bool:
    """Whether a field holds one value that a comma-separated list can sweep."""
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        return all(_is_scalar(a) for a in get_args(tp))
    if origin is not None:
        return str(origin).endswith("Literal")
    return tp in (bool, int, float, str, type(None))


def _leaf(key: str, base: StudyConfig) -> tuple[Any, list[tuple[str, ...]]]:
    """The field type at `key` and the concrete paths it names (more than one with `*`).

    Raises ConfigError naming the key and, for a misspelt part, the closest name.
    """
    parts = tuple(key.split("."))
    if not key or any(not p for p in parts):
        raise ConfigError("empty part in the key (write it as section.field)", file=SOURCE, key=key)
    tp: Any = StudyConfig
    value: Any = base
    paths: list[tuple[str, ...]] = [()]
    for i, part in enumerate(parts):
        where = ".".join(parts[: i + 1])
        if _is_model(tp):
            fields = tp.model_fields
            if part not in fields:
                raise ConfigError(unknown_key_reason(part, fields), file=SOURCE, key=where)
            tp = fields[part].annotation
            value = getattr(value, part)
            paths = [(*p, part) for p in paths]
        elif get_origin(tp) is dict:
            assert isinstance(value, dict)
            names = [str(k) for k in value]
            if part == WILDCARD:
                chosen = names
            elif part in value:
                chosen = [part]
            else:
                raise ConfigError(unknown_key_reason(part, [*names, WILDCARD]), file=SOURCE, key=where)
            if not chosen:
                raise ConfigError("is empty in the study config: nothing to set", file=SOURCE, key=where)
            tp = get_args(tp)[1]
            value = value[chosen[0]]
            paths = [(*p, c) for p in paths for c in chosen]
        else:
            raise ConfigError(
                f"{'.'.join(parts[:i])!r} is a value, it has no key {part!r}", file=SOURCE, key=where
            )
    if _is_model(tp) or get_origin(tp) is dict:
        keys = list(tp.model_fields) if _is_model(tp) else [*map(str, value), WILDCARD]
        raise ConfigError(f"is a section, not a value; its keys: {', '.join(keys)}", file=SOURCE, key=key)
    if not _is_scalar(tp):
        raise ConfigError("is a list, not a value: sweep one-value keys", file=SOURCE, key=key)
    return tp, paths


def parse_axis(spec: str, base: StudyConfig) -> SweepAxis:
    """`KEY=V1,V2,…` → the key and its values parsed to the field's type.

    Raises ConfigError (file `--sweep`, the key, the reason) for a malformed option, an
    unknown key, an empty or repeated value, or a value the field's type cannot take.
    """
    key, sep, rest = spec.partition("=")
    key = key.strip()
    if not sep:
        raise ConfigError(f"expected KEY=V1,V2,… in {spec!r}", file=SOURCE, key=key or None)
    tp, _ = _leaf(key, base)
    texts = [v.strip() for v in rest.split(",")]
    if not rest.strip() or any(not t for t in texts):
        raise ConfigError(f"empty value in {rest!r}", file=SOURCE, key=key)
    adapter: TypeAdapter[Any] = TypeAdapter(tp)
    values: list[Scalar] = []
    for text in texts:
        try:
            values.append(adapter.validate_python(_literal(text), strict=False))
        except ValidationError as exc:
            raise ConfigError(f"{text!r}: {exc.errors()[0]['msg']}", file=SOURCE, key=key) from None
    if len(set(values)) != len(values):
        raise ConfigError(f"repeated value in {rest!r}", file=SOURCE, key=key)
    return SweepAxis(key, tuple(values))


def _literal(text: str) -> Scalar:
    """`none`/`null` → None; the rest stays text for pydantic's lax parsing to the field's type."""
    return None if text.lower() in ("none", "null") else text


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Scalar) -> None:
    for part in path[:-1]:
        tree = tree[part]
    tree[path[-1]] = value


def sweep_points(base: StudyConfig, axes: Sequence[SweepAxis]) -> list[SweepPoint]:
    """Every combination of the axes' values (the first axis varies slowest), validated.

    Raises ConfigError for a key given twice, or a point whose config the model refuses
    (e.g. a share above 1), naming the key and the point's values.
    """
    keys = [a.key for a in axes]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigError("given more than once", file=SOURCE, key=twice[0])
    leaves = {a.key: _leaf(a.key, base)[1] for a in axes}
    points: list[SweepPoint] = []
    for index, combo in enumerate(itertools.product(*(a.values for a in axes)), start=1):
        overrides = dict(zip(keys, combo, strict=True))
        tree = base.model_dump()
        for key, value in overrides.items():
            for path in leaves[key]:
                _set(tree, path, value)
        try:
            cfg = StudyConfig.model_validate(tree, strict=False)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = dotted_key(tuple(first["loc"])) or None
            values = ", ".join(f"{k}={_text(v)}" for k, v in overrides.items())
            raise ConfigError(f"{first['msg']} (at {values})", file=SOURCE, key=where) from None
        points.append(SweepPoint(index, overrides, cfg))
    return points


ROW_FIELDS = ("load_violations", "feed_in_violations", "load_violations_resolved_pct", "max_load_pct")


def sweep_row(point: SweepPoint, summary: Mapping[str, Any]) -> dict[str, Any]:
    """One row of the sweep table: the point's overrides and its numbers per stress and scenario.

    Only the counts and shares, no timings: two runs of one point give the same row.
    """
    results = summary["results"]
    return {
        "point": point.name,
        "overrides": dict(point.overrides),
        "households": dict(summary["households"]),
        "limits_kw": dict(summary["limits_kw"]),
        "results": {
            st: {sc: {f: row.get(f) for f in ROW_FIELDS} for sc, row in table.items()}
            for st, table in results.items()
        },
    }
