"""Key ids: a site holding the current and the next key accepts both; unsigned and unknown keys are refused by name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from edge_agent.config import load_config
from edge_agent.decision import decide
from protocols.errors import ConfigError
from protocols.messages import Command
from protocols.signing import Keyring, ReplayGuard, SignatureError, SigningKey, canonical_bytes, sign, verify

T0 = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)
CURRENT = SigningKey(bytes.fromhex("11" * 32), "k1")
NEXT = SigningKey(bytes.fromhex("22" * 32), "k2")
RETIRED = SigningKey(bytes.fromhex("33" * 32), "k0")


def _cmd(cmd_id: str = "c1") -> Command:
    return Command(
        site="a",
        ts=T0,
        cmd_id=cmd_id,
        asset="bat1",
        kind="p_setpoint_kw",
        value=3.0,
        valid_from=T0,
        valid_until=T0 + timedelta(minutes=15),
    )


@pytest.mark.parametrize(
    ("signed_with", "reason"),
    [
        (CURRENT, None),
        (NEXT, None),
        (RETIRED, "unknown key id 'k0'"),
        (None, "unsigned command refused"),
        (SigningKey(CURRENT.key), "no key id"),
        (SigningKey(bytes.fromhex("44" * 32), "k1"), "invalid signature under key id k1"),
    ],
    ids=["current", "next", "retired-kid", "unsigned", "no-kid", "wrong-key-same-kid"],
)
def test_keyring_during_rotation(signed_with: SigningKey | None, reason: str | None) -> None:
    ring = Keyring([CURRENT, NEXT])
    cmd = _cmd() if signed_with is None else sign(_cmd(), signed_with)
    if reason is None:
        ring.check(cmd)
        assert cmd.kid == signed_with.kid  # type: ignore[union-attr]
    else:
        with pytest.raises(SignatureError, match=reason):
            ring.check(cmd)


def test_kid_is_signed_so_it_cannot_be_swapped() -> None:
    signed = sign(_cmd(), CURRENT)
    Keyring([CURRENT, SigningKey(CURRENT.key, "k2")]).check(signed)  # k1 signed it: accepted
    with pytest.raises(SignatureError, match="invalid signature"):
        Keyring([SigningKey(CURRENT.key, "k2")]).check(signed.model_copy(update={"kid": "k2"}))


def test_a_command_without_kid_keeps_the_signature_of_before_key_ids() -> None:
    """Legacy `key_file` keys: the canonical bytes leave an absent kid out, so old signatures hold."""
    assert b"kid" not in canonical_bytes(_cmd())
    assert verify(sign(_cmd(), CURRENT.key), CURRENT.key)
    Keyring([SigningKey(CURRENT.key)]).check(sign(_cmd(), CURRENT.key))


def test_keyring_refuses_a_duplicate_kid_and_a_bad_one() -> None:
    with pytest.raises(ValueError, match="twice"):
        Keyring([CURRENT, SigningKey(NEXT.key, "k1")])
    with pytest.raises(ValueError, match="key id"):
        SigningKey(b"x", "bad kid!")


def _site(tmp_path: Path, signing: dict[str, object]) -> Path:
    doc = {"site": "a", "signing": signing}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_agent_config_holds_keys_by_id_and_decide_refuses_unknown_ones(tmp_path: Path) -> None:
    (tmp_path / "k1.key").write_text(CURRENT.key.hex())
    (tmp_path / "k2.key").write_text(NEXT.key.hex())
    cfg = load_config(_site(tmp_path, {"keys": {"k1": "k1.key", "k2": "k2.key"}}))
    ring = cfg.signing.keyring()
    assert ring is not None and sorted(ring.kids) == ["k1", "k2"]  # type: ignore[type-var]

    def status(cmd: Command) -> tuple[str, str | None]:
        d = decide(cmd, config=cfg, key=ring, guard=ReplayGuard(), now=T0, ramp=None, now_mono=0.0)
        return d.status, d.reason

    # The site has no asset `bat1`: a command that passes the signature check is refused for that.
    assert status(sign(_cmd("c1"), NEXT)) == ("rejected", "unknown asset 'bat1'")
    assert status(sign(_cmd("c2"), RETIRED)) == (
        "rejected",
        "command signed with unknown key id 'k0'; this site holds: k1, k2",
    )
    assert status(_cmd("c3")) == ("rejected", "unsigned command refused: this site requires signed commands")


def test_agent_config_names_a_bad_key_file(tmp_path: Path) -> None:
    (tmp_path / "k1.key").write_text("not hex")
    with pytest.raises(ConfigError) as info:
        load_config(_site(tmp_path, {"keys": {"k1": "k1.key"}}))
    assert info.value.key == "signing.keys.k1" and "hex" in info.value.reason
    with pytest.raises(ConfigError) as info:
        load_config(_site(tmp_path, {"keys": {"bad kid!": "k1.key"}}))
    assert "signing.keys" in (info.value.key or "")
