"""The contracts file named by `dr.contracts` in cloud.yaml: YAML in, validated `Contract`s and site batteries out.

Small on purpose: a top-level `contracts:` list, each entry a `Contract`'s fields plus an
optional `battery: {asset, capacity_kwh}` telling the DR service which asset's SOC
(`{asset}/soc_pct` in the site's snapshot) makes it a battery source. Errors name the
file, the key (`contracts[1].p_max_kw`) and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloud_controller.config import read_yaml_mapping
from cloud_controller.dr.contracts import Contract
from protocols.errors import ConfigError

__all__ = ["ContractsFile", "SiteBattery", "load_contracts"]

_M = TypeVar("_M", bound=BaseModel)


class SiteBattery(BaseModel):
    """The battery whose SOC a contract's site offers (its energy; its power is the contract's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    asset: Annotated[str, Field(min_length=1, max_length=64)]
    capacity_kwh: Annotated[float, Field(gt=0, allow_inf_nan=False)]


@dataclass(frozen=True)
class ContractsFile:
    """The file's contracts and, per (site, program), the battery it names."""

    contracts: tuple[Contract, ...]
    batteries: dict[tuple[str, str], SiteBattery]


def _dotted(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def load_contracts(path: Path) -> ContractsFile:
    """Read and validate `path`; raise `ConfigError` naming file, key and reason."""
    doc = read_yaml_mapping(path)
    unknown = set(doc) - {"contracts"}
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)}; expected 'contracts'", file=str(path))
    raw = doc.get("contracts")
    if not isinstance(raw, list):
        raise ConfigError("must be a list of contracts", file=str(path), key="contracts")
    contracts: list[Contract] = []
    batteries: dict[tuple[str, str], SiteBattery] = {}
    for i, entry in enumerate(raw):
        key = f"contracts[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError("must be a mapping", file=str(path), key=key)
        fields: dict[str, Any] = dict(entry)
        battery_raw = fields.pop("battery", None)
        contract = _validated(Contract, fields, path, key)
        battery = (
            None if battery_raw is None else _validated(SiteBattery, battery_raw, path, f"{key}.battery")
        )
        if any(c.key == contract.key for c in contracts):
            raise ConfigError(
                f"site {contract.site!r} has a second contract under programme {contract.program!r}",
                file=str(path),
                key=key,
            )
        contracts.append(contract)
        if battery is not None:
            batteries[contract.key] = battery
    return ContractsFile(tuple(contracts), batteries)


def _validated(model: type[_M], raw: Any, path: Path, key: str) -> _M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        raise ConfigError(str(err["msg"]), file=str(path), key=_dotted(key, tuple(err["loc"]))) from None
