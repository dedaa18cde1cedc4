"""API roles: token files refused at start when weak, strict Bearer parsing, signed session cookies."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloud_controller.auth import MIN_TOKEN_CHARS, ApiTokens, Auth, parse_bearer, read_token_file
from cloud_controller.config import ApiConfig, load_cloud_config
from protocols.clock import SimClock
from protocols.errors import ConfigError

OPERATOR = "op-" + "o" * 20
VIEWER = "vi-" + "v" * 20


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty or whitespace only"),
        ("   \n\t\n", "empty or whitespace only"),
        ("x" * (MIN_TOKEN_CHARS - 1) + "\n", "shorter than 16 characters (15)"),
        ("abcdefgh ijklmnopq\n", "contains whitespace"),
    ],
    ids=["empty", "whitespace", "short", "two-words"],
)
def test_weak_token_file_is_refused_naming_file_and_reason(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "viewer.token"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        read_token_file(path, "viewer token")
    assert err.value.file == str(path) and reason in err.value.reason


def test_missing_token_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the operator token"):
        ApiTokens.from_config(ApiConfig(token_file=tmp_path / "absent"))


def test_token_with_trailing_newline_is_read_and_roles_told_apart(tmp_path: Path) -> None:
    (tmp_path / "op").write_text(OPERATOR + "\n")
    (tmp_path / "vi").write_text(VIEWER + "\n")
    tokens = ApiTokens.from_config(ApiConfig(token_file=tmp_path / "op", viewer_token_file=tmp_path / "vi"))
    assert tokens.roles_on
    assert tokens.role_of(OPERATOR) == "operator" and tokens.role_of(VIEWER) == "viewer"
    assert tokens.role_of(VIEWER + "x") is None and tokens.role_of("") is None


def test_viewer_token_equal_to_operator_token_is_refused(tmp_path: Path) -> None:
    (tmp_path / "op").write_text(OPERATOR)
    (tmp_path / "vi").write_text(OPERATOR)
    with pytest.raises(ConfigError, match="equals the operator token"):
        ApiTokens.from_config(
            ApiConfig(operator_token_file=tmp_path / "op", viewer_token_file=tmp_path / "vi")
        )


def test_config_keeps_token_file_as_operator_and_refuses_two_different_names(tmp_path: Path) -> None:
    good = tmp_path / "cloud.yaml"
    good.write_text("api: {token_file: op.token, viewer_token_file: vi.token}\n")
    api = load_cloud_config(good).api
    assert api.operator_file == tmp_path / "op.token" and api.viewer_token_file == tmp_path / "vi.token"
    bad = tmp_path / "bad.yaml"
    bad.write_text("api: {token_file: a.token, operator_token_file: b.token}\n")
    with pytest.raises(ConfigError) as err:
        load_cloud_config(bad)
    assert err.value.key == "api" and "not both" in err.value.reason


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER abc", "abc"),
        ("abc", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Bearer a b", None),
        ("Basic abc", None),
        ("Bearerabc", None),
    ],
    ids=["canonical", "lower", "upper", "raw", "no-token", "empty-token", "two-tokens", "basic", "no-space"],
)
def test_only_a_bearer_scheme_with_one_token_is_accepted(header: str, token: str | None) -> None:
    if token is None:
        with pytest.raises(ValueError, match="Bearer"):
            parse_bearer(header)
    else:
        assert parse_bearer(header) == token


def _auth(clock: SimClock, operator: str | None = OPERATOR, viewer: str | None = VIEWER) -> Auth:
    return Auth(ApiTokens(operator=operator, viewer=viewer), clock=clock, session_s=3600)


def test_session_cookie_holds_no_token_and_cannot_be_forged_or_outlive_its_time() -> None:
    clock = SimClock(datetime(2030, 1, 15, tzinfo=UTC))
    auth = _auth(clock)
    cookie = auth.issue_session("viewer")
    assert VIEWER not in cookie and OPERATOR not in cookie
    assert auth.session_role(cookie) == "viewer"
    forged = "operator" + cookie.removeprefix("viewer")  # same MAC, promoted role
    assert auth.session_role(forged) is None
    assert auth.session_role(cookie[:-1] + ("0" if cookie[-1] != "0" else "1")) is None
    assert auth.session_role("garbage") is None and auth.session_role(None) is None
    clock.advance(3601)
    assert auth.session_role(cookie) is None


def test_rotating_a_roles_token_ends_its_sessions() -> None:
    clock = SimClock(datetime(2030, 1, 15, tzinfo=UTC))
    cookie = _auth(clock).issue_session("operator")
    assert _auth(clock).session_role(cookie) == "operator"
    assert _auth(clock, operator="rotated-" + "r" * 20).session_role(cookie) is None
