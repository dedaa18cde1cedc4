"""Config validation errors as one line an operator can act on: "file:key: reason".

pydantic's own text for a misspelt key is "Extra inputs are not permitted", which names
neither the key nor what was meant. The cloud's `cloud.yaml`, the agent's site YAML and
the registry all turn such an error into `unknown key 'perod_s' (did you mean
'period_s'?)`, with the dotted key where it sits, through the helpers here.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from protocols.errors import ConfigError

__all__ = ["allowed_keys", "config_error", "dotted_key", "unknown_key_reason"]

Loc = tuple[int | str, ...]


def unknown_key_reason(key: str, allowed: Iterable[str]) -> str:
    """The reason for a misspelt key, with a suggestion only when one is close.

    `unknown key 'perod_s' (did you mean 'period_s'?)`, or `unknown key 'zzz'`.
    """
    close = difflib.get_close_matches(key, sorted(set(allowed)), n=1, cutoff=0.6)
    return f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


def dotted_key(loc: Loc) -> str:
    """The YAML key of a pydantic error location: `control.period_s`, `sites[0].assets[1]`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _expand(tp: Any) -> list[Any]:
    """The concrete types behind `Annotated[...]`, `X | None` and unions."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _expand(get_args(tp)[0])
    if origin is Union or origin is types.UnionType:
        return [t for arg in get_args(tp) for t in _expand(arg)]
    return [tp]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _tagged(model: type[BaseModel], tag: str) -> bool:
    """True if one of `model`'s fields is a Literal holding `tag` (a discriminated union's member)."""
    for f in model.model_fields.values():
        for t in _expand(f.annotation):
            if get_origin(t) is Literal and tag in get_args(t):
                return True
    return False


def _step(tp: Any, part: int | str) -> list[Any]:
    """The types found one location part below `tp`."""
    origin = get_origin(tp)
    if _is_model(tp):
        if isinstance(part, str) and part in tp.model_fields:
            return [tp.model_fields[part].annotation]
        if isinstance(part, str) and _tagged(tp, part):
            return [tp]  # pydantic puts a discriminated union's tag into the location
        return []
    args = get_args(tp)
    if origin in (list, set, frozenset, Sequence) and isinstance(part, int):
        return list(args[:1])
    if origin is tuple and isinstance(part, int):
        return [args[0]] if len(args) == 2 and args[1] is Ellipsis else list(args[part : part + 1])
    if origin in (dict, Mapping) and len(args) == 2:
        return [args[1]]
    return []


def allowed_keys(model: type[BaseModel], loc: Loc) -> set[str]:
    """The keys (field names and aliases) allowed in the mapping at `loc` of `model`; empty if unknown."""
    candidates: list[Any] = [model]
    for part in loc:
        candidates = [n for c in candidates for t in _expand(c) for n in _step(t, part)]
    keys: set[str] = set()
    for c in candidates:
        for t in _expand(c):
            if _is_model(t):
                for name, f in t.model_fields.items():
                    keys.add(f.alias or name)
    return keys


def config_error(
    exc: ValidationError,
    model: type[BaseModel],
    *,
    file: str,
    key_of: Callable[[Loc], str] = dotted_key,
) -> ConfigError:
    """The first error of `exc` as a ConfigError; an extra key gets "unknown key ... (did you mean ...?)"."""
    err = exc.errors(include_url=False, include_input=False)[0]
    loc: Loc = tuple(err["loc"])
    reason = str(err["msg"])
    if err["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
        reason = unknown_key_reason(loc[-1], allowed_keys(model, loc[:-1]))
    return ConfigError(reason, file=file, key=key_of(loc) or None)
