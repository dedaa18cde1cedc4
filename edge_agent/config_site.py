"""The site YAML's top-level `SiteConfig`, its sections, and the asset models.

Split out of `edge_agent.config` (which re-exports these names, and is where callers
import them from): connections (broker, TLS, signing), the agent's own settings (buffer,
commands, fallback, health, poll) and the assets with their controls, limits and safe
state. The device and point models they refer to are in `edge_agent.config_devices`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final, Literal, Self

from pydantic import Field, SecretStr, model_validator

from edge_agent.config_devices import (
    BacnetClientConfig,
    BacnetDevice,
    DeviceConfig,
    Id,
    ModbusDevice,
    PointConfig,
    PointName,
    PositiveS,
    _Model,
)
from edge_agent.config_dr import ComfortConfig, DrConfig
from protocols.messages import AssetKind, CommandKind, KeyId
from protocols.signing import Keyring, SigningKey

__all__ = [
    "DEFAULT_GUARANTEED_MIN_KW",
    "GUARANTEED_KINDS",
    "AssetConfig",
    "AssetModel",
    "BrokerConfig",
    "BufferConfig",
    "CloudConfig",
    "CommandsConfig",
    "ControlConfig",
    "EnableWrite",
    "FallbackConfig",
    "GridConnectionConfig",
    "HealthConfig",
    "LimitsConfig",
    "PollConfig",
    "SafeAction",
    "SigningConfig",
    "SiteConfig",
    "TlsConfig",
]

#: German §14a EnWG: a controllable EV charger / heat pump may be limited, never below this.
DEFAULT_GUARANTEED_MIN_KW: Final = 4.2
GUARANTEED_KINDS: Final = frozenset({"ev", "hp"})


class TlsConfig(_Model):
    """TLS files for the broker connection; relative paths are resolved against the YAML's folder.

    `ca_file` is what the broker's certificate must chain to (none = the system's trust
    store); the host name dialled is always checked against it. `cert_file` + `key_file`
    are the site's client certificate (mutual TLS): the broker takes its common name as
    the username, so the certificate is the site's identity and the ACL is keyed on it.
    """

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (a client certificate needs its key)")
        return self


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
    """The keys commands must be signed with, by key id; read from files (hex), never from the YAML.

    `keys` maps a key id to its file; during a rotation it holds the current and the next
    key. `key_file` is the single key of configs from before key ids (it verifies commands
    without a `kid`). With any key set, unsigned and unknown-key commands are refused.
    """

    key_file: Path | None = None
    keys: dict[KeyId, Path] = Field(default_factory=dict)
    #: Resolved by `load_config` from key_file (hex); not a YAML key.
    key: SecretStr | None = Field(default=None, exclude=True)
    #: Resolved by `load_config` from `keys` (hex by key id); not a YAML key.
    key_hex: dict[str, SecretStr] = Field(default_factory=dict, exclude=True)

    def key_bytes(self) -> bytes | None:
        """The key-id-less `key_file` key as bytes, or None when there is none."""
        return bytes.fromhex(self.key.get_secret_value()) if self.key is not None else None

    def keyring(self) -> Keyring | None:
        """The keys commands are checked against, or None when commands are not signature-checked."""
        held = [SigningKey(bytes.fromhex(v.get_secret_value()), kid) for kid, v in self.key_hex.items()]
        if self.key is not None:
            held.append(SigningKey(bytes.fromhex(self.key.get_secret_value())))
        return Keyring(held) if held else None


class BufferConfig(_Model):
    """The SQLite telemetry buffer that keeps readings while the cloud or broker is unreachable."""

    path: Path = Path("state/edge.sqlite")
    max_rows: int = Field(default=1_000_000, ge=10)
    max_age_s: float = Field(default=604_800.0, gt=0)
    batch_max: int = Field(default=500, ge=1, le=2_000)
    #: SQLite fsync policy: normal = survives an agent crash; full = survives a power cut too.
    synchronous: Literal["normal", "full"] = "normal"
    #: Off by default. A file the agent appends `site,asset/point,ts,seq` to for every sample,
    #: flushed before the sample is committed: what was polled, to compare with what was
    #: stored (`gridflex chaos`); `seq` is the one the queue is about to give it.
    poll_log_file: Path | None = None


class CommandsConfig(_Model):
    """How commands are taken in: a bounded queue in front of one worker, the clock and fencing checks."""

    #: Commands waiting for the worker; beyond this a command is refused with reason `busy`.
    queue_size: int = Field(default=1_000, ge=1, le=1_000_000)
    #: Allowed difference between the agent's and the cloud's clocks (seconds) before an
    #: event, and before a command refused for its validity is refused as `clock_skew`.
    clock_skew_tolerance_s: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    #: Refuse a command that carries no fencing token (`Command.fence`, the dispatcher's lease
    #: token; `edge_agent.fence`). False during the rollout, so controllers from before the
    #: token still command; set it true once the controller stamps tokens (docs/site-config.md).
    require_fence: bool = False


class FallbackConfig(_Model):
    """How long without a valid command before the assets are put into their safe state."""

    after_s: PositiveS = 300.0
    #: Fleet-wide spread of cap releases (s): this site lifts its caps — fallback entry, a
    #: command ended without a successor — up to this much later, in a slot fixed by its id
    #: (`fallback.release_delay_s`), so a fleet that loses its controller does not rebound at
    #: once. 0 = release at once. 300-900 s suits a fleet of many sites on one feeder.
    release_spread_s: float = Field(default=0.0, ge=0.0, le=3600.0, allow_inf_nan=False)


class HealthConfig(_Model):
    """The local health/metrics HTTP endpoint (port None = off, 0 = a free port) and log format."""

    host: str = "127.0.0.1"
    port: int | None = Field(default=9101, ge=0, le=65535)
    log_json: bool = False


class PollConfig(_Model):
    """Site-wide poll interval and the age after which a reading counts as stale (per point overridable)."""

    interval_s: PositiveS = 1.0
    max_age_s: PositiveS = 60.0


PositiveKw = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class GridConnectionConfig(_Model):
    """The site's grid connection limits, held locally by the agent with its own devices every poll.

    Like an EMS's peak shaving: above `import_max_kw` the battery discharges first, then EV
    chargers and heat pumps are capped down to their §14a minimum (never below it); below
    `-export_max_kw` the battery charges, then PV is curtailed. Measures are released when
    the site is back under the limit by `margin_kw` (the hysteresis band). Both limits are
    optional; a DSO's `site_import_max_kw` command tightens the import limit while valid.
    """

    import_max_kw: PositiveKw | None = None
    export_max_kw: PositiveKw | None = None
    #: Hysteresis: measures aim at limit - margin/2 and are released below limit - margin.
    margin_kw: PositiveKw = 0.5
    #: The asset whose `p_kw` is the site's net power (default: the site's one `meter` asset).
    meter: Id | None = None


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
    # The zone's 1R1C model (heat pump envelope, `flexmodels.thermal`): R, C and gains.
    r_k_per_kw: float | None = Field(default=None, gt=0)
    c_kwh_per_k: float | None = Field(default=None, gt=0)
    gains_kw: float | None = Field(default=None, ge=0)
    #: The `hvac` asset whose zone a heat pump heats (default: the site's one `hvac` asset).
    zone: Id | None = None
    # The AHU fan and the zone's air (fan envelope, `flexmodels.ventilation`).
    volume_m3: float | None = Field(default=None, gt=0)
    co2_gen_m3_h: float | None = Field(default=None, ge=0)
    fan_flow_max_m3_h: float | None = Field(default=None, gt=0)
    fan_p_max_kw: float | None = Field(default=None, ge=0)


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
    #: An `hvac` zone's comfort limits for DR writes (the comfort veto); None = the defaults.
    comfort: ComfortConfig | None = None

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
    grid_connection: GridConnectionConfig = GridConnectionConfig()
    bacnet: BacnetClientConfig = BacnetClientConfig()
    dr: DrConfig = DrConfig()
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

    def site_meter(self) -> AssetConfig | None:
        """The asset whose `p_kw` is the site's net power: `grid_connection.meter`, else the one meter."""
        if self.grid_connection.meter is not None:
            return next((a for a in self.assets if a.id == self.grid_connection.meter), None)
        meters = [a for a in self.assets if a.kind == "meter"]
        return meters[0] if len(meters) == 1 else None
