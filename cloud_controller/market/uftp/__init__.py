"""GridFlex's own side of UFTP (USEF Shapeshifter 3.1.0) in both roles: models, XML, signing, transport.

The other party is shapeshifter-uftp, which GridFlex never imports (docs/market.md, "UFTP").
This face exports the transport layer (what `gridflex bench uftp` builds two nodes from);
the roles (`dso`, `agr`) and the controller's `side` sit on the market's book and are
imported by their modules, so that `market.config` can read `uftp.config` without a cycle.

Names load on first use (protocols/lazy.py): reading a config must not load the XML codec.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols.lazy import lazy_exports

if TYPE_CHECKING:
    from cloud_controller.market.uftp.codec import XmlError, decode, encode
    from cloud_controller.market.uftp.config import UftpConfig, UftpPeer
    from cloud_controller.market.uftp.envelope import SigningKey
    from cloud_controller.market.uftp.messages import (
        FlexRequest,
        FlexRequestIsp,
        FlexRequestResponse,
        PayloadMessage,
    )
    from cloud_controller.market.uftp.node import UftpNode, UftpSendError
    from cloud_controller.market.uftp.router import uftp_router

__all__ = [
    "FlexRequest",
    "FlexRequestIsp",
    "FlexRequestResponse",
    "PayloadMessage",
    "SigningKey",
    "UftpConfig",
    "UftpNode",
    "UftpPeer",
    "UftpSendError",
    "XmlError",
    "decode",
    "encode",
    "uftp_router",
]

_WHERE = {
    "FlexRequest": "cloud_controller.market.uftp.messages",
    "FlexRequestIsp": "cloud_controller.market.uftp.messages",
    "FlexRequestResponse": "cloud_controller.market.uftp.messages",
    "PayloadMessage": "cloud_controller.market.uftp.messages",
    "SigningKey": "cloud_controller.market.uftp.envelope",
    "UftpConfig": "cloud_controller.market.uftp.config",
    "UftpNode": "cloud_controller.market.uftp.node",
    "UftpPeer": "cloud_controller.market.uftp.config",
    "UftpSendError": "cloud_controller.market.uftp.node",
    "XmlError": "cloud_controller.market.uftp.codec",
    "decode": "cloud_controller.market.uftp.codec",
    "encode": "cloud_controller.market.uftp.codec",
    "uftp_router": "cloud_controller.market.uftp.router",
}

__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
