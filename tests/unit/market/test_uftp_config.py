"""`market.uftp` refuses what cannot work, naming the key; our key file reads the library's key format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cloud_controller.market.config import MarketConfig
from cloud_controller.market.uftp.config import UftpConfig
from cloud_controller.market.uftp.envelope import SigningKey
from cloud_controller.market.uftp.side import load_key
from protocols.errors import ConfigError

KEY = SigningKey.generate().public_b64


def _peer(**kw: Any) -> dict[str, Any]:
    return {
        "domain": "agr.test",
        "role": "AGR",
        "endpoint": "http://127.0.0.1:9/m",
        "public_key": KEY,
        "fsp": "agr1",
    } | kw


@pytest.mark.parametrize(
    ("market", "match"),
    [
        ({"uftp": {"peers": [_peer()]}}, r"uftp.peers\[0\].fsp: 'agr1' is not in market.fsps"),
        ({"fsps": {"agr1": {}}, "uftp": {"peers": [_peer(fsp=None)]}}, "`fsp` .* is required"),
        ({"uftp": {"peers": [_peer(role="DSO", fsp=None)]}}, "`program` .* is required"),
        ({"fsps": {"agr1": {}}, "uftp": {"peers": [_peer(public_key="c2hvcnQ=")]}}, "32 bytes, not 5"),
        ({"fsps": {"agr1": {}}, "uftp": {"peers": [_peer(), _peer()]}}, "configured twice"),
        ({"uftp": {"domain": "localhost"}}, "should match pattern"),
        ({"fsps": {"agr1": {}}, "uftp": {"peers": [_peer(endpoint="ftp://x")]}}, "should match pattern"),
    ],
    ids=[
        "fsp-unknown",
        "agr-without-fsp",
        "dso-without-program",
        "short-key",
        "twice",
        "localhost",
        "endpoint",
    ],
)
def test_bad_uftp_config_is_refused_with_the_reason(market: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        MarketConfig.model_validate(market)


def test_a_peer_that_only_sells_to_our_agr_side_needs_no_market_fsp() -> None:
    cfg = MarketConfig.model_validate(
        {"uftp": {"roles": ["AGR"], "peers": [_peer(role="DSO", fsp=None, program="p")]}}
    )
    assert cfg.uftp.peer("agr.test", "DSO") is not None and cfg.uftp.peer("agr.test", "AGR") is None


def test_signing_key_file_takes_the_libsodium_form_and_names_the_file_when_bad(tmp_path: Path) -> None:
    key = SigningKey.generate()
    (tmp_path / "k").write_text(key.private_b64 + "\n", encoding="utf-8")
    assert load_key(UftpConfig(signing_key_file=tmp_path / "k")).public_b64 == key.public_b64
    (tmp_path / "bad").write_text("c2hvcnQ=", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad:market.uftp.signing_key_file: .*32 or 64 bytes, not 5"):
        load_key(UftpConfig(signing_key_file=tmp_path / "bad"))
    assert load_key(UftpConfig()).public_b64 != key.public_b64  # none: generated
