"""The site YAML (docs/site-config.md) as frozen pydantic models, and `load_config`.

Validation happens once, at start: unknown keys, a point on a missing device, a
control on a read-only point or a safe state below the §14a minimum all fail here
with the dotted key that is wrong, instead of at 3 a.m. when fallback runs.
A device that says `template: <name>` is expanded first (`device_templates.expand_site`)
into the points a hand-written config has, so the same checks apply to both forms.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from device_templates import expand_site
from edge_agent.config_rules import check_rules
from protocols.errors import ConfigError
from protocols.messages import AssetKind, CommandKind
from protocols.topics import ID_PATTERN

__all__ = [
    "DEFAULT_GUARANTEED_MIN_KW",
    "AssetConfig",
    "AssetModel",
    "BacnetClientConfig",
    "BacnetDevice",
    "BrokerConfig",
    "BufferConfig",
    "CloudConfig",
    "CommandsConfig",
    "ControlConfig",
    "DeviceConfig",
    "EnableWrite",
    "FallbackConfig",
    "HealthConfig",
    "LimitsConfig",
    "ModbusDevice",
    "PointConfig",
    "PollConfig",
    "SafeAction",
    "SigningConfig",
    "SiteConfig",
    "TlsConfig",
    "load_config",
]

#: German §14a EnWG: a controllable EV charger / heat pump may be limited, never below this.
DEFAULT_GUARANTEED_MIN_KW: Final = 4.2
GUARANTEED_KINDS: Final = frozenset({"ev", "hp"})

Id = Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]
PointName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
PositiveS = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TlsConfig(_Model):
    """TLS files for the broker connection; relative paths are resolved against the YAML's folder."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


class BrokerConfig(_Model):
    """MQTT broker; the password comes from a file or an env variable, never from the YAML."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    tls: TlsConfig | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    #: Resolved by `load_config` from password_file / password_env (not a YAML key).
    password: SecretStr | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _one_secret_source(self) -> Self:
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("set password_file or password_env, not both")
        return self


class CloudConfig(_Model):
    """Whether the cloud's stored-upto watermark frees buffer rows, and when to resend if it stalls."""

    #: False = edge-only install: a broker PUBACK frees queue rows (see docs/edge-agent.md).
    watermark: bool = True
    #: Watermark stuck below what we sent for this long -> resend from the watermark
    #: (doubling on each resend without progress, up to 600 s).
    resend_after_s: float = Field(default=10.0, gt=0)


class SigningConfig(_Model):
    """The key commands must be signed with; read from `key_file` (hex), never from the YAML."""

    key_file: Path | None = None
    #: Resolved by `load_config` from key_file (hex); not a YAML key.
    key: SecretStr | None = Field(default=None, exclude=True)

    def key_bytes(self) -> bytes | None:
        """The command-signing key as bytes, or None when commands are not signature-checked."""
        return bytes.fromhex(self.key.get_secret_value()) if self.key is not None else None


class BufferConfig(_Model):
    """The SQLite telemetry buffer that keeps readings while the cloud or broker is unreachable."""

    path: Path = Path("state/edge.sqlite")
    max_rows: int = Field(default=1_000_000, ge=10)
    max_age_s: float = Field(default=604_800.0, gt=0)
    batch_max: int = Field(default=500, ge=1, le=2_000)
    #: SQLite fsync policy: normal = survives an agent crash; full = survives a power cut too.
    synchronous: Literal["normal", "full"] = "normal"


class CommandsConfig(_Model):
    """How commands are taken in: a bounded queue in front of one worker, and the clock check."""

    #: Commands waiting for the worker; beyond this a command is refused with reason `busy`.
    queue_size: int = Field(default=1_000, ge=1, le=1_000_000)
    #: Allowed difference between the agent's and the cloud's clocks (seconds) before an
    #: event, and before a command refused for its validity is refused as `clock_skew`.
    clock_skew_tolerance_s: float = Field(default=5.0, gt=0, allow_inf_nan=False)


class FallbackConfig(_Model):
    """How long without a valid command before the assets are put into their safe state."""

    after_s: PositiveS = 300.0


class HealthConfig(_Model):
    """The local health/metrics HTTP endpoint (port None = off, 0 = a free port) and log format."""

    host: str = "127.0.0.1"
    port: int | None = Field(default=9101, ge=0, le=65535)
    log_json: bool = False


class PollConfig(_Model):
    """Site-wide poll interval and the age after which a reading counts as stale (per point overridable)."""

    interval_s: PositiveS = 1.0
    max_age_s: PositiveS = 60.0


class BacnetClientConfig(_Model):
    """The agent's own BACnet/IP endpoint (one for all BACnet devices of the site)."""

    ip: str = "127.0.0.1/8"  # interface address/prefix BAC0 binds to
    port: int | None = Field(default=None, ge=1, le=65535)  # None = a free UDP port
    device_id: int = Field(default=3_999_001, ge=0, le=4_194_302)


class ModbusDevice(_Model):
    """A Modbus/TCP device: where it is, its unit id, timeout and how far reads may coalesce."""

    id: Id
    driver: Literal["modbus"]
    host: str
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255)
    timeout_s: PositiveS = 1.0
    max_gap: int = Field(default=8, ge=0, le=100)  # coalesce reads across gaps up to this many registers


class BacnetDevice(_Model):
    """A BACnet/IP device, by its address and device instance."""

    id: Id
    driver: Literal["bacnet"]
    address: str = Field(pattern=r"^[^\s]+$")
    device_id: int = Field(ge=0, le=4_194_302)
    timeout_s: PositiveS = 2.0


DeviceConfig = Annotated[ModbusDevice | BacnetDevice, Field(discriminator="driver")]


class PointConfig(_Model):
    """One measured or written value; Modbus fields or a BACnet `object`, checked per device."""

    name: PointName
    device: Id
    # Modbus
    table: Literal["holding", "input", "coil", "discrete"] | None = None
    address: int | None = Field(default=None, ge=0, le=65535)
    type: Literal["int16", "uint16", "int32", "uint32", "float32", "bool"] | None = None
    word_order: Literal["big", "little"] = "big"
    byte_order: Literal["big", "little"] = "big"
    sf_address: int | None = Field(default=None, ge=0, le=65535)
    # BACnet
    object: str | None = Field(default=None, pattern=r"^[A-Za-z]+:\d+$")
    bacnet_property: str = Field(default="presentValue", alias="property", pattern=r"^[A-Za-z]+$")
    priority: int | None = Field(default=None, ge=1, le=16)
    # Both
    scale: float = 1.0
    offset: float = 0.0
    sign: float = 1.0
    unit: str = Field(default="", max_length=64)
    interval_s: PositiveS | None = None
    deadband: float = Field(default=0.0, ge=0)
    max_age_s: PositiveS | None = None
    writable: bool = False
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        if self.scale == 0 or self.sign == 0:
            raise ValueError("scale and sign must not be 0")
        return self

    @property
    def register_count(self) -> int:
        """How many 16-bit registers the point's type occupies (2 for 32-bit types)."""
        return 2 if self.type in ("int32", "uint32", "float32") else 1


class EnableWrite(_Model):
    """A write that must precede a control write (e.g. enabling remote control on the device)."""

    point: PointName
    value: float


class ControlConfig(_Model):
    """How a command kind is applied: written value = command value * factor + offset."""

    point: PointName
    factor: float = 1.0
    offset: float = 0.0
    read_back: PointName | None = None
    enable: EnableWrite | None = None
    #: `mode` commands: mode name -> value written (e.g. {self_consumption: 0, hold: 2}).
    values: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _factor(self) -> Self:
        if self.factor == 0:
            raise ValueError("factor must not be 0")
        return self


class LimitsConfig(_Model):
    """An asset's power bounds, ramp rate and §14a guaranteed minimum, applied to commands and flex."""

    p_min_kw: float | None = None
    p_max_kw: float | None = None
    ramp_kw_per_s: float | None = Field(default=None, gt=0)
    p_guaranteed_min_kw: float | None = Field(default=None, ge=0)


class SafeAction(_Model):
    """One step of an asset's safe state: write a value to a point, or relinquish it (BACnet)."""

    point: PointName
    write: float | None = None
    relinquish: bool = False

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.write is None) == (not self.relinquish):
            raise ValueError("a safe_state step needs exactly one of `write: <value>` or `relinquish: true`")
        return self


class AssetModel(_Model):
    """Physical parameters of an asset (battery, tank, heat pump) for the local flexibility estimate."""

    capacity_kwh: float | None = Field(default=None, gt=0)
    soc_min_pct: float | None = Field(default=None, ge=0, le=100)
    soc_max_pct: float | None = Field(default=None, ge=0, le=100)
    eta_charge: float | None = Field(default=None, gt=0, le=1)
    eta_discharge: float | None = Field(default=None, gt=0, le=1)
    tank_kwh: float | None = Field(default=None, gt=0)
    cop: float | None = Field(default=None, gt=0)
    p_max_kw: float | None = Field(default=None, ge=0)
    t_min_c: float | None = None
    t_max_c: float | None = None


class AssetConfig(_Model):
    """A controllable asset: its points, how each command kind is applied, limits and safe state."""

    id: Id
    kind: AssetKind
    p_nominal_kw: float | None = Field(default=None, ge=0)
    points: list[PointConfig] = Field(default_factory=list)
    controls: dict[CommandKind, ControlConfig] = Field(default_factory=dict)
    limits: LimitsConfig = LimitsConfig()
    safe_state: list[SafeAction] = Field(default_factory=list)
    model: AssetModel = AssetModel()

    @property
    def guaranteed_min_kw(self) -> float | None:
        """§14a floor for `p_limit_kw` (EV/HP default 4.2 kW), None for other kinds unless set."""
        if self.limits.p_guaranteed_min_kw is not None:
            return self.limits.p_guaranteed_min_kw
        return DEFAULT_GUARANTEED_MIN_KW if self.kind in GUARANTEED_KINDS else None

    def point(self, name: str) -> PointConfig:
        """The asset's point called `name`; KeyError if it has none."""
        for p in self.points:
            if p.name == name:
                return p
        raise KeyError(name)


class SiteConfig(_Model):
    """The whole site YAML, validated: connections, devices, assets and the agent's own settings."""

    site: Id
    broker: BrokerConfig = BrokerConfig()
    cloud: CloudConfig = CloudConfig()
    signing: SigningConfig = SigningConfig()
    buffer: BufferConfig = BufferConfig()
    commands: CommandsConfig = CommandsConfig()
    fallback: FallbackConfig = FallbackConfig()
    health: HealthConfig = HealthConfig()
    poll: PollConfig = PollConfig()
    bacnet: BacnetClientConfig = BacnetClientConfig()
    devices: list[DeviceConfig] = Field(default_factory=list)
    assets: list[AssetConfig] = Field(default_factory=list)
    #: sha256 prefix of the file's bytes (published on `state`); set by `load_config`.
    config_hash: str = Field(default="", exclude=True)

    def device(self, device_id: str) -> ModbusDevice | BacnetDevice:
        """The device with id `device_id`; KeyError if the site has none."""
        for d in self.devices:
            if d.id == device_id:
                return d
        raise KeyError(device_id)

    def asset(self, asset_id: str) -> AssetConfig:
        """The asset with id `asset_id`; KeyError if the site has none."""
        for a in self.assets:
            if a.id == asset_id:
                return a
        raise KeyError(asset_id)


def _key(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("modbus", "bacnet") and out.endswith("]"):
            continue  # discriminator tag pydantic puts into the location
        elif part == "[key]":
            continue  # the key itself of a mapping is wrong
        else:
            out += f".{part}" if out else str(part)
    return out


def _resolve(base: Path, path: Path | None) -> Path | None:
    if path is None:
        return None
    return path if path.is_absolute() else (base / path)


def _read_secret(path: Path, *, file: str, key: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read secret file {path}: {exc.strerror}", file=file, key=key) from None


def _parse_yaml(raw_bytes: bytes, file: str) -> dict[str, Any]:
    """The YAML's top-level mapping; refuses bad YAML, a non-mapping and secrets written inline."""
    try:
        raw: Any = yaml.safe_load(raw_bytes)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"invalid YAML{where}: {getattr(exc, 'problem', exc)}", file=file) from None
    if not isinstance(raw, dict):
        raise ConfigError("the top level must be a mapping", file=file)
    for secret_key in (("broker", "password"), ("signing", "key")):
        section = raw.get(secret_key[0])
        if isinstance(section, dict) and secret_key[1] in section:
            raise ConfigError(
                "secrets do not go into the YAML; use password_file/password_env or key_file",
                file=file,
                key=".".join(secret_key),
            )
    return raw


def _resolve_broker(broker: BrokerConfig, base: Path, file: str) -> BrokerConfig:
    """The broker section with its password read and its file paths made absolute."""
    password: SecretStr | None = None
    if broker.password_file is not None:
        password = SecretStr(
            _read_secret(_resolve(base, broker.password_file), file=file, key="broker.password_file")  # type: ignore[arg-type]
        )
    elif broker.password_env is not None:
        value = os.environ.get(broker.password_env)
        if value is None:
            raise ConfigError(
                f"environment variable {broker.password_env} is not set", file=file, key="broker.password_env"
            )
        password = SecretStr(value)
    tls = broker.tls
    if tls is not None:
        tls = tls.model_copy(
            update={
                "ca_file": _resolve(base, tls.ca_file),
                "cert_file": _resolve(base, tls.cert_file),
                "key_file": _resolve(base, tls.key_file),
            }
        )
    return broker.model_copy(
        update={"password": password, "tls": tls, "password_file": _resolve(base, broker.password_file)}
    )


def _resolve_signing(signing: SigningConfig, base: Path, file: str) -> SigningConfig:
    """The signing section with its key read from `key_file` and checked to be non-empty hex."""
    if signing.key_file is None:
        return signing
    key_path = _resolve(base, signing.key_file)
    assert key_path is not None
    key_hex = _read_secret(key_path, file=file, key="signing.key_file")
    try:
        if not bytes.fromhex(key_hex):
            raise ValueError
    except ValueError:
        raise ConfigError(
            "key file must hold a non-empty hex key", file=file, key="signing.key_file"
        ) from None
    return signing.model_copy(update={"key_file": key_path, "key": SecretStr(key_hex)})


def load_config(path: str | Path) -> SiteConfig:
    """Read, validate and resolve a site YAML; raise `ConfigError(reason, file=, key=)`."""
    path = Path(path)
    file = str(path)
    try:
        raw_bytes = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=file) from None
    raw = expand_site(_parse_yaml(raw_bytes, file), file=file, base=path.parent)
    try:
        cfg = SiteConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        raise ConfigError(err["msg"], file=file, key=_key(err["loc"]) or None) from None
    base = path.parent
    buffer = cfg.buffer.model_copy(update={"path": _resolve(base, cfg.buffer.path)})
    cfg = cfg.model_copy(
        update={
            "broker": _resolve_broker(cfg.broker, base, file),
            "signing": _resolve_signing(cfg.signing, base, file),
            "buffer": buffer,
            "config_hash": hashlib.sha256(raw_bytes).hexdigest()[:16],
        }
    )
    check_rules(cfg, file)
    return cfg
