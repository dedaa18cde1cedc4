"""`load_config`: reading a site YAML into a resolved, checked `SiteConfig`.

Split out of `edge_agent.config` (which re-exports `load_config`, and is where callers
import it from): YAML parsing (refusing inline secrets), template expansion
(`device_templates.expand_site`), pydantic validation with the dotted key that is wrong,
secret and path resolution against the YAML's folder, the config hash, and the
cross-key rules of `edge_agent.config_rules`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr, ValidationError

from device_templates import expand_site
from edge_agent.config_rules import check_rules
from edge_agent.config_site import BrokerConfig, SigningConfig, SiteConfig
from protocols.config_errors import config_error
from protocols.errors import ConfigError

__all__ = ["load_config"]


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
    except ValueError as exc:  # a path no file can have (a NUL byte): found by `gridflex chaos`
        raise ConfigError(f"cannot read secret file {path!r}: {exc}", file=file, key=key) from None


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


def _read_hex_key(path: Path, *, file: str, key: str) -> SecretStr:
    """A signing key file's content, checked to be a non-empty hex key."""
    key_hex = _read_secret(path, file=file, key=key)
    try:
        if not bytes.fromhex(key_hex):
            raise ValueError
    except ValueError:
        raise ConfigError(f"key file {path} must hold a non-empty hex key", file=file, key=key) from None
    return SecretStr(key_hex)


def _resolve_signing(signing: SigningConfig, base: Path, file: str) -> SigningConfig:
    """The signing section with its keys read from `key_file` / `keys` and checked to be non-empty hex."""
    update: dict[str, Any] = {}
    if signing.key_file is not None:
        key_path = _resolve(base, signing.key_file)
        assert key_path is not None
        update["key_file"] = key_path
        update["key"] = _read_hex_key(key_path, file=file, key="signing.key_file")
    paths: dict[str, Path] = {}
    hexes: dict[str, SecretStr] = {}
    for kid, rel in signing.keys.items():
        path = _resolve(base, rel)
        assert path is not None
        paths[kid] = path
        hexes[kid] = _read_hex_key(path, file=file, key=f"signing.keys.{kid}")
    if paths:
        update["keys"] = paths
        update["key_hex"] = hexes
    return signing.model_copy(update=update) if update else signing


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
    except ValidationError as exc:  # "file:key: reason"; a misspelt key gets "did you mean"
        raise config_error(exc, SiteConfig, file=file, key_of=_key) from None
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
