"""`cloud.yaml`: the controller's configuration (pydantic, strict), loaded with file/key/reason errors.

Every field has a default so `CloudConfig()` is a working local set-up (broker on
127.0.0.1:1883, SQLite store in ./state, API on 127.0.0.1:8080, 15-minute control).
Secrets are never in the YAML: broker password, InfluxDB token and API token come from
files named in it (the deployment's secret mounts).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from cloud_controller.config_sections import (
    AreasConfig,
    DashboardConfig,
    DispatchConfig,
    DrConfig,
    ElementLimitConfig,
    EnvelopeConfig,
    GridConfig,
    LeaseConfig,
    OpenAdrConfig,
    _Model,
)
from cloud_controller.market.config import MarketConfig
from protocols.config_errors import config_error
from protocols.errors import ConfigError

__all__ = [
    "ApiConfig",
    "AreasConfig",
    "BrokerSettings",
    "BrokerTlsSettings",
    "CloudConfig",
    "ControlConfig",
    "DashboardConfig",
    "DispatchConfig",
    "DrConfig",
    "ElementLimitConfig",
    "EnvelopeConfig",
    "GridConfig",
    "LeaseConfig",
    "OpenAdrConfig",
    "RegionConfig",
    "StoreConfig",
    "load_cloud_config",
]


#: In `broker.username`, `password_file`, `tls.cert_file` and `tls.key_file`: this worker's
#: broker identity, `<client_id>-<role>` (e.g. gridflex-cloud-dispatch), so one cloud.yaml
#: serves every worker and each still logs in as itself.
IDENTITY = "{identity}"


class BrokerTlsSettings(_Model):
    """TLS to the broker: the CA its certificate must chain to, and this worker's client certificate."""

    ca_file: Path | None = None  # none = the system's trust store
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> BrokerTlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (a client certificate needs its key)")
        return self


class BrokerSettings(_Model):
    """The MQTT broker the controller connects to, and as whom.

    Each worker needs its own identity (username or certificate): a broker that binds
    client ids to identities, as `deploy-config`'s does, disconnects a client when
    another logs in with the same identity. `{identity}` in the file names and the
    username is replaced with the worker's `identity(role)`.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password_file: Path | None = None
    client_id: str = Field(default="gridflex-cloud", pattern=r"^[A-Za-z0-9_-]{1,100}$")
    tls: BrokerTlsSettings | None = None
    #: How long the broker keeps a disconnected worker's session (MQTT 5 session expiry).
    #: An ingest worker's is short: while a dead worker's session lives, the broker keeps
    #: handing it its share of the shared subscription's telemetry, which then waits for it
    #: (the sites' watermarks stall); once the session expires the other workers get all of
    #: it, and the agents resend whatever the expired session held (their watermark is not
    #: advanced until a sample is stored). The dispatcher's stays long: its session holds
    #: the acks and state of a restart.
    session_expiry_s: int = Field(default=3600, ge=0, le=2**32 - 1)
    ingest_session_expiry_s: int = Field(default=60, ge=0, le=2**32 - 1)

    def identity(self, role: str) -> str:
        """This worker's broker identity and client id: `<client_id>-<role>`."""
        return f"{self.client_id}-{role}"

    def for_identity(self, role: str) -> BrokerSettings:
        """These settings with `{identity}` filled in for the worker of `role`."""
        ident = self.identity(role)

        def fill(p: Path | None) -> Path | None:
            return None if p is None else Path(str(p).replace(IDENTITY, ident))

        tls = self.tls
        if tls is not None:
            tls = tls.model_copy(update={"cert_file": fill(tls.cert_file), "key_file": fill(tls.key_file)})
        return self.model_copy(
            update={
                "username": None if self.username is None else self.username.replace(IDENTITY, ident),
                "password_file": fill(self.password_file),
                "tls": tls,
            }
        )


class StoreConfig(_Model):
    """Where telemetry is stored: a SQLite file, plus optionally a copy of every sample in InfluxDB.

    `api` picks the InfluxDB write API: `v2` (`/api/v2/write` with org, bucket and a token:
    InfluxDB 2.x/3.x, VictoriaMetrics) or `v1` (`/write?db=`: InfluxDB 1.x, and 2.x through
    its v1 compatibility API). `history` picks where `/sites/{id}/history` reads: the local
    SQLite file, or InfluxDB by InfluxQL on `/query` (1.x natively; 2.x and 3.x answer it
    through a database → bucket mapping) — the choice for an API worker that ingests
    nothing itself, or a SQLite file pruned sooner than the long history.
    `kind: postgres` replaces the SQLite file with a PostgreSQL database that every
    controller process on every machine shares: `dsn` (libpq form, without a password)
    and the password in `password_file`.
    """

    kind: Literal["sqlite", "influxdb", "postgres"] = "sqlite"
    path: Path = Path("state/cloud.sqlite")  # SQLite store, or the watermark side file for InfluxDB
    url: str = "http://127.0.0.1:8086"
    api: Literal["v2", "v1"] = "v2"
    org: str = "gridflex"
    bucket: str = "telemetry"
    #: InfluxQL database for v1 writes and history reads (default: the bucket's name).
    database: str | None = Field(default=None, min_length=1, max_length=200)
    token_file: Path | None = None
    history: Literal["sqlite", "influxdb"] = "sqlite"
    #: PostgreSQL connection string for kind postgres, e.g. "host=db port=5432 user=gridflex dbname=gridflex".
    dsn: str | None = Field(default=None, min_length=1, max_length=1000)
    #: File holding the PostgreSQL password (never in the YAML or the DSN).
    password_file: Path | None = None
    #: Ingest's write-behind batches (cloud_controller/ingest_writer.py): a flush (one store
    #: transaction) after this many telemetry messages, or `ingest_batch_ms` after the first;
    #: each message is acknowledged to the broker only after its commit. 0: one transaction
    #: per message as it arrives, acknowledged on receipt (the behaviour before batching).
    ingest_batch_messages: int = Field(default=200, ge=0, le=100_000)
    ingest_batch_ms: float = Field(default=100.0, ge=0.0, le=10_000.0)
    #: Messages accepted and not yet committed before ingest stops reading (the broker keeps the rest).
    ingest_max_queued: int = Field(default=5_000, ge=1, le=1_000_000)
    #: Attempts of a failing flush (pauses 0.2 s, doubling, at most 5 s) before its messages are
    #: left unacknowledged for the broker to redeliver.
    ingest_flush_attempts: int = Field(default=5, ge=1, le=100)

    @model_validator(mode="after")
    def _postgres_needs_dsn(self) -> StoreConfig:
        if self.kind == "postgres" and self.dsn is None:
            raise ValueError("store.kind postgres needs store.dsn")
        if self.dsn is not None:
            from psycopg import ProgrammingError  # only a postgres set-up pays for the import
            from psycopg.conninfo import conninfo_to_dict

            try:
                parts = conninfo_to_dict(self.dsn)
            except ProgrammingError as exc:
                raise ValueError(f"store.dsn is not a PostgreSQL connection string: {exc}") from None
            if "password" in parts:
                raise ValueError("store.dsn must not hold a password: put it in store.password_file")
        return self

    @model_validator(mode="after")
    def _influx_needs_token(self) -> StoreConfig:
        if self.kind == "influxdb" and self.api == "v2" and self.token_file is None:
            raise ValueError("store.kind influxdb with api v2 needs token_file")
        if self.history == "influxdb" and self.kind != "influxdb":
            raise ValueError("store.history influxdb needs store.kind influxdb (nothing is written there)")
        return self

    @property
    def influx_database(self) -> str:
        """The InfluxQL database name: `database`, else the bucket's."""
        return self.database or self.bucket


class RegionConfig(_Model):
    #: "schutterwald" (bundled, the Schutterwald study's three stations) or a pandapower JSON file.
    """The region's network, and optionally the name of its HV/MV transformer."""

    network: str = "schutterwald"
    hvmv_trafo_name: str | None = None


class ControlConfig(_Model):
    """The control loop: period, horizon, margins, the HV/MV limit and how batteries are commanded."""

    period_s: float = Field(default=900.0, ge=60.0, le=3600.0)
    horizon_steps: int = Field(default=96, ge=1, le=672)
    margin_s: float = Field(default=120.0, ge=0.0)
    #: HV/MV limit of the registered sites' load (kW); None = no congestion management.
    station_limit_kw: float | None = Field(default=None, gt=0)
    dispatch: bool = True
    #: "setpoint": battery power per period; "grid_target": the site's grid exchange per
    #: period, held by the battery inverter's own fast loop (meter `p_setpoint_kw`).
    battery_control: Literal["setpoint", "grid_target"] = "setpoint"
    #: Plan against the fleet's forecast this many standard deviations above the median.
    forecast_z: float = Field(default=1.2816, ge=0.0, le=4.0)
    #: Solve the plan as one LP per MV/LV station (cloud_controller/dispatch/decompose.py)
    #: while the HV/MV threshold idles; the whole LP answers when it binds. Pays for large
    #: fleets (1,000 sites x 96 periods: 2.5 s instead of 11 s); costs ~25 % more in the
    #: periods where the threshold binds.
    solve_by_area: bool = False
    #: Seconds between fleet-guard steps (measurement-based corrections between plans, see
    #: cloud_controller/live/guard.py); 0 = off. Match it to the agents' telemetry interval.
    guard_period_s: float = Field(default=60.0, ge=0.0, le=900.0)
    #: Scenarios of the probabilistic congestion forecast computed after every plan, in a worker
    #: thread (`GET /forecast/congestion`, cloud_controller/forecast/probabilistic.py); 0 = off.
    congestion_scenarios: int = Field(default=100, ge=0, le=1000)
    #: Registered sites the planner and the guard never steer: an FSP's portfolio that only the
    #: market's orders move (docs/market.md, "a fair comparison"). Their load stays in the forecast.
    market_only_sites: list[str] = Field(default_factory=list)


class ApiConfig(_Model):
    """The HTTP API: where it listens, and the tokens of its roles (cloud_controller/auth.py).

    `operator_token_file` (or its older name `token_file`): the Bearer token writes need;
    none = writes refused. `viewer_token_file`: once set, every read (JSON, dashboard pages,
    /metrics) needs the viewer or the operator token, and the dashboard asks for a login;
    unset = reads open (the loopback demo). Token files hold one token of >= 16 characters.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)  # 0 = any free port
    enabled: bool = True
    token_file: Path | None = None  # the operator token's older key, kept working
    operator_token_file: Path | None = None
    viewer_token_file: Path | None = None
    #: Most AC scenarios one `/forecast/congestion?scenarios=N` may ask for (seconds of CPU each 50).
    max_scenarios: int = Field(default=200, ge=1, le=1000)
    #: Hours a dashboard login lasts (the session cookie's lifetime).
    session_hours: float = Field(default=12.0, gt=0.0, le=24.0 * 30)

    @model_validator(mode="after")
    def _one_operator_file(self) -> ApiConfig:
        both = self.token_file is not None and self.operator_token_file is not None
        if both and self.token_file != self.operator_token_file:
            raise ValueError("set operator_token_file or its older name token_file, not both")
        return self

    @property
    def operator_file(self) -> Path | None:
        """The operator token's file under either name."""
        return self.operator_token_file or self.token_file


class CloudConfig(_Model):
    """The whole `cloud.yaml`: broker, store, registry, region, control loop, signing keys, API."""

    broker: BrokerSettings = BrokerSettings()
    store: StoreConfig = StoreConfig()
    registry: Path | None = None  # registry YAML or a test bed's manifest.json
    region: RegionConfig = RegionConfig()
    control: ControlConfig = ControlConfig()
    #: `<site>.<kid>.key` files (hex), one per site: commands to that site are signed under
    #: key id `kid` (a legacy `<site>.key` signs without one). See `protocols.signing`.
    signing_keys_dir: Path | None = None
    api: ApiConfig = ApiConfig()
    dashboard: DashboardConfig = DashboardConfig()
    lease: LeaseConfig = LeaseConfig()
    grid: GridConfig = GridConfig()
    dr: DrConfig = DrConfig()
    market: MarketConfig = MarketConfig()
    openadr: OpenAdrConfig = OpenAdrConfig()
    #: Where the plan's areas are solved (`dispatch.areas`), with `control.solve_by_area`.
    dispatch: DispatchConfig = DispatchConfig()

    @model_validator(mode="after")
    def _areas_need_by_area(self) -> CloudConfig:
        ex = self.dispatch.areas.execution
        if ex != "serial" and not self.control.solve_by_area:
            raise ValueError(
                f"dispatch.areas.execution: {ex} solves the plan's areas elsewhere; "
                "it needs control.solve_by_area: true"
            )
        return self


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (empty file = {}); anything else is a ConfigError."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("file not found", file=str(path)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=str(path)) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError("the top level must be a mapping", file=str(path))
    return doc


def _broker_paths(broker: BrokerSettings, rel: Callable[[Path | None], Path | None]) -> BrokerSettings:
    """The broker section with its files taken relative to the config file."""
    tls = broker.tls
    if tls is not None:
        tls = tls.model_copy(
            update={
                name: rel(getattr(tls, name)) or getattr(tls, name)
                for name in ("ca_file", "cert_file", "key_file")
            }
        )
    return broker.model_copy(
        update={"password_file": rel(broker.password_file) or broker.password_file, "tls": tls}
    )


def _market_paths(market: MarketConfig, rel: Callable[[Path | None], Path | None]) -> MarketConfig:
    """The market section with its files (store, DSO token, FSP tokens, UFTP key and store) relative to the config file."""
    uftp = market.uftp.model_copy(
        update={
            k: rel(getattr(market.uftp, k)) or getattr(market.uftp, k)
            for k in ("signing_key_file", "store_path")
        }
    )
    fsps = {
        name: f.model_copy(update={"token_file": rel(f.token_file) or f.token_file})
        for name, f in market.fsps.items()
    }
    return market.model_copy(
        update={
            "store_path": rel(market.store_path) or market.store_path,
            "dso_token_file": rel(market.dso_token_file) or market.dso_token_file,
            "fsps": fsps,
            "uftp": uftp,
        }
    )


def load_cloud_config(path: Path) -> CloudConfig:
    """Read and validate `path`; relative paths in it are taken relative to the file."""
    doc = read_yaml_mapping(path)
    try:
        cfg = CloudConfig.model_validate(doc)
    except ValidationError as exc:  # "file:key: reason"; a misspelt key gets "did you mean"
        raise config_error(exc, CloudConfig, file=str(path), key_of=_dotted) from None
    base = path.parent

    def rel(p: Path | None) -> Path | None:
        return None if p is None or p.is_absolute() else base / p

    updates = {
        "registry": rel(cfg.registry) or cfg.registry,
        "signing_keys_dir": rel(cfg.signing_keys_dir) or cfg.signing_keys_dir,
        "store": cfg.store.model_copy(
            update={
                "path": rel(cfg.store.path) or cfg.store.path,
                "token_file": rel(cfg.store.token_file) or cfg.store.token_file,
                "password_file": rel(cfg.store.password_file) or cfg.store.password_file,
            }
        ),
        "broker": _broker_paths(cfg.broker, rel),
        "dr": cfg.dr.model_copy(
            update={
                "contracts": rel(cfg.dr.contracts) or cfg.dr.contracts,
                "store_path": rel(cfg.dr.store_path) or cfg.dr.store_path,
            }
        ),
        "market": _market_paths(cfg.market, rel),
        "openadr": cfg.openadr.model_copy(
            update={
                "credentials_file": rel(cfg.openadr.credentials_file) or cfg.openadr.credentials_file,
                "store_path": rel(cfg.openadr.store_path) or cfg.openadr.store_path,
            }
        ),
        "api": cfg.api.model_copy(
            update={
                k: rel(getattr(cfg.api, k)) or getattr(cfg.api, k)
                for k in ("token_file", "operator_token_file", "viewer_token_file")
            }
        ),
    }
    return cfg.model_copy(update=updates)
