"""The VEN's configuration: which VTN, which credentials, which programme becomes which DR programme.

One YAML file (`gridflex ven check-config FILE`), validated by `VenConfig`; errors name
the file, the key and the reason. Secrets are never in it: the VTN's OAuth client
credentials come from a credentials file (`{client_id, secret}`, kept outside the repo)
or from the environment (`GRIDFLEX_VEN_CLIENT_ID`, `GRIDFLEX_VEN_CLIENT_SECRET`, read by
pydantic-settings), and the controller's operator token from its token file.

```yaml
vtn:
  url: https://utility.example/openadr3      # the VTN's base URL (plain http: loopback only)
  credentials_file: secrets/ven-client.yaml  # optional; else the environment
  ven_name: gridflex-aggregator              # clientName on our reports
dr_api:
  url: http://127.0.0.1:8080                 # the controller's API
  operator_token_file: secrets/operator.token
poll_interval_s: 30
programs:
  - program: congestion-nl                   # the VTN's programName
    dr_program: peak                         # the GridFlex DR programme its requests go to
    objective: flexibility
    report_payload: DELIVERED_FLEX           # the payload type our reports carry
    simple_levels_kw: {1: 10, 2: 20, 3: 40}  # SIMPLE level → kW to take off
    import_baseline_kw: {station-1: 120}     # IMPORT_CAPACITY_LIMIT: kW off = baseline − limit
    target_sites: {station-1: [a, b]}        # event target → the sites it may use (else all)
registration:                                # our VEN object (and resources) on the VTN, at start
  targets: [station-1]
  resources: [{resource_name: site-a, targets: [station-1]}]
subscribe: true                              # a callback server on loopback; the VTN notifies it
callback: {host: 127.0.0.1, port: 8091}
```
"""

from __future__ import annotations

import contextlib
import ipaddress
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud_controller.auth import read_token_file
from cloud_controller.config import read_yaml_mapping
from protocols.config_errors import config_error
from protocols.errors import ConfigError
from protocols.messages import DRObjective

__all__ = [
    "Attribute",
    "CallbackConfig",
    "DrApiConfig",
    "ProgramMap",
    "RegistrationConfig",
    "ResourceConfig",
    "VenConfig",
    "VenCredentials",
    "VtnConfig",
    "is_ean13",
    "load_credentials",
    "load_operator_token",
    "load_ven_config",
]

Name = Annotated[str, Field(min_length=1, max_length=128)]
DrProgram = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
PositiveKw = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _is_loopback(host: str) -> bool:
    loopback = host == "localhost"
    with contextlib.suppress(ValueError):
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    return loopback


def _http_url(url: str) -> str:
    """http(s) only; plain http only to a loopback host (credentials and tokens travel on it)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"an http(s) URL with a host, not {url!r}")
    if parts.scheme == "http":
        host = parts.hostname
        if not _is_loopback(host):
            raise ValueError(f"plain http is allowed to a loopback host only, not {host!r}: use https")
    return url.rstrip("/")


class VtnConfig(_Model):
    """The utility's VTN: base URL (as its clients are given it), our credentials, our clientName."""

    url: str
    credentials_file: Path | None = None
    ven_name: Name = "gridflex-aggregator"
    timeout_s: float = Field(default=10.0, gt=0, le=120)

    _url = field_validator("url")(_http_url)


class DrApiConfig(_Model):
    """The controller's HTTP API, where the DR requests go (`POST /dr/requests`, the operator role)."""

    url: str = "http://127.0.0.1:8080"
    operator_token_file: Path
    timeout_s: float = Field(default=30.0, gt=0, le=300)

    _url = field_validator("url")(_http_url)


class ProgramMap(_Model):
    """One VTN programme → one GridFlex DR programme, and what its signals mean in kW."""

    program: Name
    dr_program: DrProgram
    direction: Literal["reduce", "increase"] = "reduce"
    objective: DRObjective | None = None
    report_payload: Name = "DELIVERED_FLEX"
    #: SIMPLE levels (1-3; 0 is "normal operation", no request) → kW to take off.
    simple_levels_kw: dict[Annotated[int, Field(ge=1, le=3)], PositiveKw] = Field(default_factory=dict)
    #: Per event target: the import (kW) the target would draw; IMPORT_CAPACITY_LIMIT L → baseline − L.
    import_baseline_kw: dict[Name, PositiveKw] = Field(default_factory=dict)
    #: Per event target: the GridFlex sites below it (the DR request's `sites`); absent = all.
    target_sites: dict[Name, list[DrProgram]] = Field(default_factory=dict)
    #: The DR selection's longest step; an event's intervals are cut into equal steps no longer.
    step_minutes: int = Field(default=15, ge=1, le=240)
    #: `nlflex`: the Dutch profile's reports (an ACK on receipt; one delivery report per event,
    #: AGGREGATED_REPORT, a value per 15 min of every event interval) and whole quarter hours only.
    profile: Literal["openadr", "nlflex"] = "openadr"


class Attribute(_Model):
    """An OpenADR `valuesMap` (a VEN's or a resource's attribute): a type and its values."""

    type: Name
    values: list[str | int | float | bool] = Field(min_length=1)


class ResourceConfig(_Model):
    """One resource the VEN registers (3.1 `POST /resources`): its name unique per VEN."""

    resource_name: Name
    attributes: list[Attribute] = Field(default_factory=list)
    targets: list[Name] = Field(default_factory=list)


class RegistrationConfig(_Model):
    """Our VEN object on the VTN (found by `vtn.ven_name`, else created) and its resources."""

    enabled: bool = True
    attributes: list[Attribute] = Field(default_factory=list)
    targets: list[Name] = Field(default_factory=list)
    resources: list[ResourceConfig] = Field(default_factory=list)

    @field_validator("resources")
    @classmethod
    def _unique(cls, resources: list[ResourceConfig]) -> list[ResourceConfig]:
        names = [r.resource_name for r in resources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"resource(s) {dup} listed twice")
        return resources


class CallbackConfig(_Model):
    """Where the VEN listens for the VTN's notifications (`subscribe: true`); loopback only.

    Loopback only because the callback is plain http with a bearer token: a VTN elsewhere
    reaches it through the deployment's TLS proxy, whose address is `public_url`.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8091, ge=0, le=65535)  # 0: any free port (tests)
    #: The URL the VTN is given; default `http://{host}:{port}/openadr3/notifications`.
    public_url: str | None = None
    max_body_bytes: int = Field(default=1_000_000, ge=1_000, le=16_000_000)

    @field_validator("host")
    @classmethod
    def _loopback(cls, host: str) -> str:
        if not _is_loopback(host):
            raise ValueError(f"the callback server listens on loopback only, not {host!r}")
        return host

    @field_validator("public_url")
    @classmethod
    def _public(cls, url: str | None) -> str | None:
        return None if url is None else _http_url(url)


class VenConfig(_Model):
    """The whole VEN file."""

    vtn: VtnConfig
    dr_api: DrApiConfig
    poll_interval_s: float = Field(default=30.0, ge=1.0, le=3600.0)
    programs: list[ProgramMap] = Field(min_length=1)
    #: Where the bridge keeps what it submitted and reported (JSON), so a restart resubmits nothing.
    state_file: Path | None = None
    registration: RegistrationConfig = Field(default_factory=RegistrationConfig)
    #: Subscribe to the VTN's EVENT notifications (a callback server on `callback`); polling stays.
    subscribe: bool = False
    callback: CallbackConfig = Field(default_factory=CallbackConfig)

    @field_validator("programs")
    @classmethod
    def _unique(cls, programs: list[ProgramMap]) -> list[ProgramMap]:
        names = [p.program for p in programs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"programme(s) {dup} mapped twice")
        return programs

    @model_validator(mode="after")
    def _nl_ven_name(self) -> VenConfig:
        if any(p.profile == "nlflex" for p in self.programs) and not is_ean13(self.vtn.ven_name):
            raise ValueError(
                f"vtn.ven_name {self.vtn.ven_name!r}: the NL profile's venName (our reports' clientName) "
                "is the service provider's EAN13 (13 digits, valid check digit)"
            )
        return self


def is_ean13(code: str) -> bool:
    """13 digits whose last is the GS1 check digit (weights 1, 3 from the left)."""
    if len(code) != 13 or not code.isdigit():
        return False
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(code[:12]))
    return (10 - total % 10) % 10 == int(code[12])


class VenCredentials(_Model):
    """The VTN's OAuth2 client credentials (RFC 6749 §4.4)."""

    client_id: Name
    secret: SecretStr


class _EnvCredentials(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRIDFLEX_VEN_", extra="ignore")

    client_id: str | None = None
    client_secret: SecretStr | None = None


def load_ven_config(path: Path) -> VenConfig:
    """Read and validate the VEN file; relative paths are taken relative to it."""
    doc = read_yaml_mapping(path)
    try:
        cfg = VenConfig.model_validate(doc)
    except ValidationError as exc:
        raise config_error(exc, VenConfig, file=str(path)) from None

    def rel(p: Path | None) -> Path | None:
        return None if p is None or p.is_absolute() else path.parent / p

    return cfg.model_copy(
        update={
            "vtn": cfg.vtn.model_copy(update={"credentials_file": rel(cfg.vtn.credentials_file)}),
            "dr_api": cfg.dr_api.model_copy(
                update={"operator_token_file": rel(cfg.dr_api.operator_token_file)}
            ),
            "state_file": rel(cfg.state_file),
        }
    )


def load_credentials(cfg: VenConfig, *, file: str = "(config)") -> VenCredentials:
    """From `vtn.credentials_file` when set, else `GRIDFLEX_VEN_CLIENT_ID` / `_CLIENT_SECRET`."""
    path = cfg.vtn.credentials_file
    if path is not None:
        doc = read_yaml_mapping(path)
        try:
            return VenCredentials.model_validate(doc)
        except ValidationError as exc:
            raise config_error(exc, VenCredentials, file=str(path)) from None
    env = _EnvCredentials()
    if env.client_id and env.client_secret is not None and env.client_secret.get_secret_value():
        return VenCredentials(client_id=env.client_id, secret=env.client_secret)
    raise ConfigError(
        "no VTN credentials: set vtn.credentials_file, or GRIDFLEX_VEN_CLIENT_ID and "
        "GRIDFLEX_VEN_CLIENT_SECRET in the environment",
        file=file,
        key="vtn.credentials_file",
    )


def load_operator_token(cfg: VenConfig) -> str:
    """The controller's operator token (its file checked as the controller checks it)."""
    return read_token_file(cfg.dr_api.operator_token_file, "operator token")
