"""Generate a deployment's broker configuration, certificates and keys: nothing secret lives in git.

`gridflex deploy-config --sites N --out DIR` writes, for the docker compose test bed (or
any Mosquitto deployment), with mutual TLS and command signing on by default:

    DIR/mosquitto/mosquitto.conf   TLS listener, persistence, TCP_NODELAY, ACL, ids bound to identities
    DIR/mosquitto/acl              per-site isolation keyed on the identity (`gridflex.ops.broker.site_acl`)
    DIR/mosquitto/certs/           ca.crt, broker.crt, broker.key (the broker's own)
    DIR/mosquitto/passwd           `$7$` PBKDF2 lines (`auth="password"` only)
    DIR/ca/ca.crt, ca.key          the deployment's CA (keep ca.key off the servers in production)
    DIR/secrets/ca.crt             the CA clients verify the broker against
    DIR/secrets/<id>.crt, <id>.key one client certificate per site and per controller worker (0600)
    DIR/secrets/<id>.pw            one random password per identity (`auth="password"` only)
    DIR/secrets/signing/<site>.<kid>.key  one HMAC key per site (hex, 0600); the controller holds all
    DIR/secrets/influxdb.token     admin token for InfluxDB 2 (compose passes it as a _FILE; 0644)
    DIR/secrets/influxdb.password  admin password for InfluxDB 2 (0644, see below)
    DIR/secrets/postgres.password  the controller's PostgreSQL password (`store.password_file`, 0600)
    DIR/sites.txt                  the site ids, one per line

Identities: a site's is its id; each controller worker has its own (`CONTROLLER_IDENTITIES`,
`<client_id>-<role>` as `cloud_controller` names itself), because Mosquitto replaces a
client's id with its identity (`use_username_as_clientid`) and two workers sharing one
would disconnect each other. The rendering is a pure function (`render_deployment`) so it
is tested without files. Existing secrets, keys and certificates are kept on re-runs
(credentials must not rotate under running agents) unless `rotate=True`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from gridflex.ops.broker import BrokerTls, mosquitto_password_line, site_acl, tls_listener_lines
from gridflex.ops.certs import CertificateAuthority, IssuedCert, write_pem
from protocols.topics import validate_id

__all__ = [
    "CONTROLLER_IDENTITIES",
    "Deployment",
    "ingest_identities",
    "mosquitto_conf",
    "render_deployment",
    "site_ids",
    "write_deployment",
]

#: One broker identity per controller worker: `gridflex cloud` (role all), the k8s pod's
#: dispatcher and its two ingest workers (`--worker a|b`), and a lone ingest worker.
CONTROLLER_IDENTITIES = (
    "gridflex-cloud-all",
    "gridflex-cloud-dispatch",
    "gridflex-cloud-ingest",
    "gridflex-cloud-a-ingest",
    "gridflex-cloud-b-ingest",
)


def ingest_identities(n: int) -> tuple[str, ...]:
    """The identities of `n` ingest pods of a StatefulSet `ingest` (`--worker ingest-<i>`, deploy/k8s/)."""
    return tuple(f"gridflex-cloud-ingest-{i}-ingest" for i in range(n))


#: The names the broker is dialled by (compose service, k8s service, the host's loopback).
BROKER_NAMES = ("mosquitto", "mosquitto.gridflex.svc", "localhost", "127.0.0.1")
MQTTS_PORT = 8883
#: Where the broker listens by default: every address of its container (a bridge network).
#: On a host network (deploy/docker-compose.host.yml) pass ("127.0.0.1", port) instead.
LISTEN = ("0.0.0.0", MQTTS_PORT)
#: Shared secrets generated beside the certificates: name -> world-readable (0644) or not (0600).
#: InfluxDB's entrypoint runs as its own user, so its files are 0644; our Postgres image
#: (deploy/postgres.Dockerfile) runs as uid 1883 like the controller, so its password is 0600.
EXTRA_SECRETS = {"influxdb.token": True, "influxdb.password": True, "postgres.password": False}
Auth = Literal["certificate", "password"]


def site_ids(n_sites: int, *, prefix: str = "b") -> list[str]:
    """The test bed's site ids: b001, b002, ... (the simulators use the same scheme)."""
    if n_sites < 1:
        raise ValueError("need at least one site")
    width = max(3, len(str(n_sites)))
    return [validate_id(f"{prefix}{i:0{width}d}", what="site id") for i in range(1, n_sites + 1)]


@dataclass(frozen=True)
class Deployment:
    """Rendered files (relative path -> bytes) plus the secrets they were made from."""

    files: dict[str, bytes]
    passwords: dict[str, str]
    #: Which rendered files are private (written 0600, or 0644 for InfluxDB's init files).
    private: frozenset[str] = field(default_factory=frozenset)
    #: Per site (kid, hex key): the key the controller signs that site's commands with.
    signing_keys: dict[str, tuple[str, str]] = field(default_factory=dict)

    def text(self, rel: str) -> str:
        """A rendered file as text (every file is PEM, hex or config: ASCII)."""
        return self.files[rel].decode()


def mosquitto_conf(
    *,
    auth: Auth = "certificate",
    port: int = MQTTS_PORT,
    host: str = "0.0.0.0",  # the broker's container listens on its network
    config_dir: str = "/config/mosquitto",
    data_dir: str = "/mosquitto/data/",
) -> str:
    """Broker settings for a deployment: TLS, identities bound to client ids, persistent, low latency.

    `certificate` (the default): a client certificate from the deployment's CA is required
    and its common name is the username. `password`: TLS with a server certificate only,
    a username/password per identity. In both, `use_username_as_clientid` replaces the id
    a client asks for with its identity, so no client can disconnect another by its id.
    """
    certs = Path(config_dir) / "certs"
    tls = BrokerTls(
        ca_file=certs / "ca.crt",
        cert_file=certs / "broker.crt",
        key_file=certs / "broker.key",
        require_certificate=auth == "certificate",
    )
    lines = [
        "# generated by `gridflex deploy-config`; regenerate instead of editing",
        "per_listener_settings false",
        f"listener {port} {host}",
        *tls_listener_lines(tls),
        "use_username_as_clientid true",
        "allow_anonymous false",
    ]
    if auth == "password":
        lines.append(f"password_file {config_dir}/passwd")
    lines += [
        f"acl_file {config_dir}/acl",
        # Nagle's algorithm adds ~88 ms to every command round trip (docs/benchmarks.md).
        "set_tcp_nodelay true",
        "persistence true",
        f"persistence_location {data_dir}",
        # A PUBACK is not durability: agents keep data until the cloud's `stored`
        # watermark passes it. Saving often shortens what a broker crash can lose.
        "autosave_interval 60",
        "max_queued_messages 100000",
        "max_inflight_messages 0",
        "log_dest stdout",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "",
    ]
    return "\n".join(lines)


@dataclass
class _Existing:
    """What an earlier run left in the output directory (kept unless rotating)."""

    secrets: dict[str, str] = field(default_factory=dict)  # <name>.pw and influxdb.* values
    ca: CertificateAuthority | None = None
    files: dict[str, bytes] = field(default_factory=dict)  # certificates, keys, signing keys


class _Files:
    """The files being rendered: each one reused from the earlier run when it holds it."""

    def __init__(self, old: _Existing) -> None:
        self.old = old
        self.files: dict[str, bytes] = {}
        self.private: set[str] = set()

    def put(self, rel: str, data: bytes, *, secret: bool = False) -> None:
        self.files[rel] = self.old.files.get(rel) or data
        if secret:
            self.private.add(rel)

    def pair(self, cert_rel: str, key_rel: str, make: Callable[[], IssuedCert]) -> None:
        """A certificate and its key: both from the earlier run, or both new."""
        if self.old.files.get(cert_rel) and self.old.files.get(key_rel):
            self.put(cert_rel, b"")
            self.put(key_rel, b"", secret=True)
            return
        issued = make()
        self.old.files.pop(cert_rel, None)
        self.old.files.pop(key_rel, None)
        self.put(cert_rel, issued.cert_pem)
        self.put(key_rel, issued.key_pem, secret=True)


def _signing_keys(out: _Files, sites: Sequence[str]) -> dict[str, tuple[str, str]]:
    """One HMAC key per site under a key id (`k<date>` when new); the newest kept one otherwise."""
    signing: dict[str, tuple[str, str]] = {}
    kid = "k" + datetime.now(UTC).strftime("%Y%m%d")
    for site in sites:
        found = sorted(r for r in out.old.files if r.startswith(f"secrets/signing/{site}."))
        rel = found[-1] if found else f"secrets/signing/{site}.{kid}.key"
        out.put(rel, (secrets.token_hex(32) + "\n").encode(), secret=True)
        site_kid = rel.removeprefix(f"secrets/signing/{site}.").removesuffix(".key")
        signing[site] = (site_kid, out.files[rel].decode().strip())
    return signing


def render_deployment(
    sites: Sequence[str],
    *,
    auth: Auth = "certificate",
    broker_names: Sequence[str] = BROKER_NAMES,
    controller_identities: Sequence[str] = CONTROLLER_IDENTITIES,
    passwords: dict[str, str] | None = None,
    existing: _Existing | None = None,
    listen: tuple[str, int] = LISTEN,
) -> Deployment:
    """Render every file for `sites`; what `existing` holds is reused, the rest generated."""
    for site in sites:
        validate_id(site, what="site id")
    reserved = (set(controller_identities) | {"cloud"}) & set(sites)
    if reserved:
        raise ValueError(f"site id {sorted(reserved)} is reserved for the controller")
    old = existing or _Existing()
    known = {**old.secrets, **(passwords or {})}
    identities = [*controller_identities, *sites]
    out = _Files(old)
    ca = old.ca or CertificateAuthority.generate()
    out.put("ca/ca.crt", ca.cert_pem)
    out.put("ca/ca.key", ca.key_pem, secret=True)
    out.put("mosquitto/certs/ca.crt", ca.cert_pem)
    out.put("secrets/ca.crt", ca.cert_pem)
    out.pair(
        "mosquitto/certs/broker.crt",
        "mosquitto/certs/broker.key",
        lambda: ca.issue_server(list(broker_names)),
    )
    pw: dict[str, str] = {}
    for ident in identities:
        if auth == "certificate":
            out.pair(f"secrets/{ident}.crt", f"secrets/{ident}.key", lambda i=ident: ca.issue_client(i))  # type: ignore[misc]
        else:
            pw[ident] = known.get(ident) or secrets.token_urlsafe(18)
            out.put(f"secrets/{ident}.pw", (pw[ident] + "\n").encode(), secret=True)
    for extra in EXTRA_SECRETS:
        pw[extra] = known.get(extra) or secrets.token_urlsafe(32)
        out.put(f"secrets/{extra}", (pw[extra] + "\n").encode(), secret=True)
    signing = _signing_keys(out, sites)
    out.files["mosquitto/mosquitto.conf"] = mosquitto_conf(auth=auth, host=listen[0], port=listen[1]).encode()
    out.files["mosquitto/acl"] = site_acl(cloud_users=controller_identities).encode()
    if auth == "password":
        lines = [mosquitto_password_line(u, pw[u]) for u in identities]
        out.put("mosquitto/passwd", ("\n".join(lines) + "\n").encode(), secret=True)
    out.files["sites.txt"] = ("\n".join(sites) + "\n").encode()
    return Deployment(files=out.files, passwords=pw, private=frozenset(out.private), signing_keys=signing)


def _existing(out: Path) -> _Existing:
    """Secrets, the CA and issued certificates and keys of an earlier run under `out`."""
    found = _Existing()
    if (out / "ca" / "ca.crt").is_file() and (out / "ca" / "ca.key").is_file():
        found.ca = CertificateAuthority.load(out / "ca" / "ca.crt", out / "ca" / "ca.key")
    for sub in ("secrets", "secrets/signing", "mosquitto/certs"):
        folder = out / sub
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if not path.is_file():
                continue
            rel = f"{sub}/{path.name}"
            data = path.read_bytes()
            if path.suffix == ".pw" or path.name in EXTRA_SECRETS:
                if data.strip():
                    found.secrets[path.name.removesuffix(".pw")] = data.decode().strip()
            elif data.strip() and (sub == "secrets/signing" or found.ca is not None):
                # Certificates are kept only with the CA that issued them; signing keys always.
                found.files[rel] = data
    return found


def write_deployment(
    out: Path,
    sites: Sequence[str],
    *,
    rotate: bool = False,
    auth: Auth = "certificate",
    broker_names: Sequence[str] = BROKER_NAMES,
    listen: tuple[str, int] = LISTEN,
    controller_identities: Sequence[str] = CONTROLLER_IDENTITIES,
) -> Deployment:
    """Write the rendered files under `out` (secrets 0600, readable by the containers' user)."""
    deployment = render_deployment(
        sites,
        auth=auth,
        broker_names=broker_names,
        controller_identities=controller_identities,
        existing=None if rotate else _existing(out),
        listen=listen,
    )
    for rel, data in deployment.files.items():
        path = out / rel
        if EXTRA_SECRETS.get(rel.removeprefix("secrets/"), False):
            # Read by the influxdb image's entrypoint, which runs as another user than ours;
            # the volume is mounted only by this deployment's own containers.
            write_pem(path, data, private=False)
        elif rel in deployment.private:
            # Our containers and the eclipse-mosquitto image both run as uid 1883.
            write_pem(path, data, private=True)
        else:
            write_pem(path, data, private=False)
    return deployment
