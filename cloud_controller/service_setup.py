"""What the controller builds at start from its config: secrets, store, keys, MQTT session, sinks, planner.

Each fails once, at start, with the file and the reason (a `ConfigError`), before any
connection is made: a missing key file or an unreadable password is not found later
inside the control loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cloud_controller.config import CloudConfig
from cloud_controller.ingest_writer import WriterSettings
from cloud_controller.registry import Registry
from cloud_controller.store import SqliteStore, Store
from cloud_controller.store.influx_history import InfluxHistory
from protocols.errors import ConfigError
from protocols.market import MarketKind, market_wildcard
from protocols.mqtt import MqttConfig, MqttSession
from protocols.signing import SigningKey
from protocols.topics import shared, site_wildcard

if TYPE_CHECKING:
    from cloud_controller.dispatch import AreaExecution
    from cloud_controller.live.planner import MpcPlanner
    from cloud_controller.store.influx import InfluxSink

__all__ = [
    "configured_planner",
    "history_reader",
    "influx_sink",
    "mqtt_session",
    "open_store",
    "read_secret",
    "signing_keys",
]

INGEST_GROUP = "gridflex-ingest"


def read_secret(path: Path | None, what: str) -> str | None:
    """The stripped text of a secret file (None if not configured); unreadable: a ConfigError naming it."""
    if path is None:
        return None
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror}", file=str(path)) from None


def open_store(config: CloudConfig) -> Store:
    """The store `store.kind` names: PostgreSQL (shared by every worker), else the SQLite file."""
    if config.store.kind != "postgres":
        return SqliteStore(config.store.path)
    from cloud_controller.store.postgres import PostgresStore  # psycopg only where asked for

    password = read_secret(config.store.password_file, "PostgreSQL password")
    assert config.store.dsn is not None  # StoreConfig requires it for kind postgres
    return PostgresStore(config.store.dsn, password=password)


def signing_keys(config: CloudConfig, registry: Registry) -> dict[str, SigningKey]:
    """Per site the key its commands are signed with: `<site>.<kid>.key` (or a legacy `<site>.key`).

    Exactly one per site: the controller signs with one key; a rotation gives the sites
    the next key first, then replaces the controller's file (`protocols.signing`).
    """
    keys: dict[str, SigningKey] = {}
    folder = config.signing_keys_dir
    if folder is None:
        return keys
    if not folder.is_dir():
        raise ConfigError("not a directory", file=str(folder), key="signing_keys_dir")
    by_site: dict[str, list[Path]] = {}
    for path in folder.glob("*.key"):
        by_site.setdefault(path.name.split(".", 1)[0], []).append(path)
    for site in registry.ids:
        found = sorted(by_site.get(site, []))
        if not found:
            continue
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise ConfigError(
                f"{len(found)} keys for site {site!r} ({names}); the controller signs with one: "
                "remove the old one once every site holds the new",
                file=str(folder),
                key="signing_keys_dir",
            )
        path = found[0]
        kid = path.name.removeprefix(f"{site}.").removesuffix(".key") or None
        try:
            keys[site] = SigningKey(bytes.fromhex(path.read_text().strip()), None if kid == "key" else kid)
        except (ValueError, OSError) as exc:
            raise ConfigError(f"not a hex signing key with a valid key id: {exc}", file=str(path)) from None
    return keys


def mqtt_session(
    config: CloudConfig,
    role: str,
    *,
    on_connect: Callable[[MqttSession], Awaitable[None]],
    manual_ack: bool = False,
) -> MqttSession:
    """The worker's MQTT 5 session: its own identity, a persistent session, the role's subscriptions.

    `manual_ack`: a message is acknowledged when the handler's future is done (ingest's commit).
    """
    broker = config.broker.for_identity(role)
    password = read_secret(broker.password_file, "broker password")
    subs: list[tuple[str, int]] = []
    if role in ("all", "ingest"):
        subs += [(shared(INGEST_GROUP, site_wildcard(k)), 1) for k in ("telemetry", "event")]
    if role in ("all", "dispatch"):
        subs += [(site_wildcard(k), 1) for k in ("state", "flex", "ack")]
        if config.market.enabled:
            subs.append((market_wildcard(MarketKind.OFFER), 1))
    return MqttSession(
        MqttConfig(
            host=broker.host,
            port=broker.port,
            client_id=broker.identity(role),
            username=broker.username,
            password=password,
            clean_start=False,
            session_expiry_s=broker.ingest_session_expiry_s if role == "ingest" else broker.session_expiry_s,
            tls=broker.tls is not None,
            ca_file=broker.tls.ca_file if broker.tls else None,
            cert_file=broker.tls.cert_file if broker.tls else None,
            key_file=broker.tls.key_file if broker.tls else None,
        ),
        subscriptions=subs,
        on_connect=on_connect,
        manual_ack=manual_ack,
    )


def writer_settings(config: CloudConfig) -> WriterSettings:
    """Ingest's write-behind queue as `store.ingest_*` configures it."""
    st = config.store
    return WriterSettings(
        max_messages=st.ingest_batch_messages,
        max_wait_s=st.ingest_batch_ms / 1000.0,
        max_queued=st.ingest_max_queued,
        attempts=st.ingest_flush_attempts,
    )


def influx_sink(config: CloudConfig) -> InfluxSink:
    """The InfluxDB copy of every stored sample (`store.kind: influxdb`)."""
    from cloud_controller.store.influx import InfluxSink

    token = read_secret(config.store.token_file, "InfluxDB token") or ""
    return InfluxSink(
        config.store.url,
        org=config.store.org,
        bucket=config.store.bucket,
        token=token,
        api=config.store.api,
        database=config.store.influx_database,
    )


def history_reader(config: CloudConfig, store: Store) -> Store | InfluxHistory:
    """Where `/sites/{id}/history` reads: the store itself, or InfluxDB (`store.history: influxdb`)."""
    if config.store.history != "influxdb":
        return store
    token = read_secret(config.store.token_file, "InfluxDB token") or ""
    return InfluxHistory(config.store.url, database=config.store.influx_database, token=token)


def configured_planner(config: CloudConfig, registry: Registry, keys: Mapping[str, SigningKey]) -> MpcPlanner:
    """The planner of `config.region` and `config.control` over the registry's sites."""
    from cloud_controller.grid import build_schutterwald_region, region_from_json
    from cloud_controller.live.planner import build_planner

    c = config.control
    registered = set(registry.ids)
    for i, site in enumerate(c.market_only_sites):  # before the region: it takes seconds to build
        if site not in registered:
            raise ConfigError(f"{site!r} is not a registered site", key=f"control.market_only_sites[{i}]")
    rc = config.region
    region = (
        build_schutterwald_region()
        if rc.network == "schutterwald"
        else region_from_json(rc.network, hvmv_trafo_name=rc.hvmv_trafo_name)
    )
    registry.check_stations(region.station_branch)  # names a grid meter's unknown station
    return build_planner(
        region,
        registry.sites,
        period_s=c.period_s,
        horizon_steps=c.horizon_steps,
        margin_s=c.margin_s,
        station_limit_kw=c.station_limit_kw,
        signing_keys=keys,
        battery_control=c.battery_control,
        forecast_z=c.forecast_z,
        by_area=c.solve_by_area,
        grid_limits=config.grid,  # grid.limits / grid.envelopes (grid/limits.py)
        market_only_sites=c.market_only_sites,
        area_execution=_area_execution(config) if c.solve_by_area else None,
    )


def _area_execution(config: CloudConfig) -> AreaExecution | None:
    """`dispatch.areas` as the planner's area execution (None: serial, the engine's own 2 threads)."""
    from cloud_controller.dispatch import area_execution

    a = config.dispatch.areas
    if a.execution == "serial":
        return None
    return area_execution(a.execution, a.workers, a.scheduler)
