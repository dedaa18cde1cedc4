"""What the controller opens at start from its config: secret files, the store, the sites' signing keys.

Each fails once, at start, with the file and the reason (a `ConfigError`), before any
connection is made: a missing key file or an unreadable password is not found later
inside the control loop.
"""

from __future__ import annotations

from pathlib import Path

from cloud_controller.config import CloudConfig
from cloud_controller.registry import Registry
from cloud_controller.store import SqliteStore, Store
from protocols.errors import ConfigError
from protocols.signing import SigningKey

__all__ = ["open_store", "read_secret", "signing_keys"]


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
