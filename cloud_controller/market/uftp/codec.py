"""UFTP XML: encode a message the way shapeshifter-uftp renders it, decode one strictly.

Pure functions over bytes. The writer mirrors xsdata's (the library's serializer):
an XML declaration, two-space indent, attributes in field order, empty elements as
`<ISP .../>`, decimals with the schema's fraction digits, booleans as `true`/`false`.
The reader uses the standard library's expat parser and refuses what UFTP never sends
and a hostile peer might: a DOCTYPE or entity declaration (entity expansion), over
`MAX_XML_BYTES`, an unknown element or attribute; each refusal is an `XmlError` naming
the element/attribute and the reason.
"""

from __future__ import annotations

import types
import typing
import xml.etree.ElementTree as ET
from decimal import Decimal
from typing import Any, TypeVar
from xml.sax.saxutils import quoteattr

from pydantic import BaseModel, ValidationError

from cloud_controller.market.uftp.messages import MESSAGE_TYPES, PayloadMessage, _Xml
from cloud_controller.market.uftp.prognosis_messages import PROGNOSIS_TYPES
from protocols.errors import ContractError

__all__ = ["MAX_XML_BYTES", "XmlError", "decode", "decode_as", "encode"]

MAX_XML_BYTES = 1024 * 1024
DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
M = TypeVar("M", bound=PayloadMessage)
#: every message the codec decodes: the Flex* conversation and D-Prognosis / Metering
TYPES: dict[str, type[PayloadMessage]] = {**MESSAGE_TYPES, **PROGNOSIS_TYPES}


class XmlError(ContractError):
    """An XML message that is not a UFTP message we take (the reason names where)."""


def _child_type(annotation: Any) -> type[_Xml] | None:
    """The element type of a `list[Model]` field, None for an attribute field."""
    if typing.get_origin(annotation) is list:
        (arg,) = typing.get_args(annotation)
        if isinstance(arg, type) and issubclass(arg, _Xml):
            return arg
    return None


def _text(model: _Xml, name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        digits = type(model).DIGITS.get(name)
        return f"{value:.{digits}f}" if digits is not None else str(value)
    return str(value)


def _write(model: _Xml, depth: int, out: list[str]) -> None:
    pad = "  " * depth
    attrs: list[str] = []
    children: list[_Xml] = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if value is None:
            continue
        if _child_type(info.annotation) is not None:
            children.extend(value)
            continue
        attrs.append(f" {info.alias}={quoteattr(_text(model, name, value))}")
    head = f"{pad}<{model.TAG}{''.join(attrs)}"
    if not children:
        out.append(f"{head}/>\n")
        return
    out.append(f"{head}>\n")
    for child in children:
        _write(child, depth + 1, out)
    out.append(f"{pad}</{model.TAG}>\n")


def encode(message: PayloadMessage) -> bytes:
    """The message as UTF-8 XML, as the library's `to_xml` writes it."""
    out = [DECLARATION]
    _write(message, 0, out)
    return "".join(out).encode("utf-8")


def _fields(cls: type[_Xml], elem: ET.Element, where: str) -> dict[str, Any]:
    by_alias = {info.alias: (name, info) for name, info in cls.model_fields.items()}
    data: dict[str, Any] = {}
    for attr, value in elem.attrib.items():
        found = by_alias.get(attr)
        if found is None or _child_type(found[1].annotation) is not None:
            raise XmlError(f"{where}: unknown attribute {attr!r}")
        name, info = found
        data[name] = _attr_value(info.annotation, value, f"{where}@{attr}")
    for child in elem:
        found = by_alias.get(child.tag)
        sub = _child_type(found[1].annotation) if found is not None else None
        if found is None or sub is None:
            raise XmlError(f"{where}: unexpected element <{child.tag}>")
        data.setdefault(found[0], []).append(_fields(sub, child, f"{where}/{child.tag}"))
    return data


def _attr_value(annotation: Any, value: str, where: str) -> Any:
    """Booleans need the XML spelling; everything else pydantic converts from the string."""
    args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    if bool in args:
        if value not in ("true", "false", "1", "0"):
            raise XmlError(f"{where}: {value!r} is not an XML boolean")
        return value in ("true", "1")
    return value


def decode(data: bytes) -> PayloadMessage:
    """A UFTP message from XML bytes (one of `TYPES`), or XmlError saying what is wrong."""
    if len(data) > MAX_XML_BYTES:
        raise XmlError(f"message of {len(data)} bytes exceeds {MAX_XML_BYTES}")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise XmlError("a DOCTYPE or entity declaration is not allowed")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise XmlError(f"not well-formed XML: {exc}") from None
    cls = TYPES.get(root.tag)
    if cls is None:
        raise XmlError(f"<{root.tag}> is not a message GridFlex takes ({', '.join(TYPES)})")
    msg: PayloadMessage = _validate(cls, _fields(cls, root, root.tag), root.tag)
    return msg


def decode_as(data: bytes, cls: type[M]) -> M:
    """`decode`, and XmlError unless the message is a `cls`."""
    msg = decode(data)
    if not isinstance(msg, cls):
        raise XmlError(f"expected <{cls.TAG}>, got <{msg.TAG}>")
    return msg


def _validate(cls: type[BaseModel], data: dict[str, Any], tag: str) -> Any:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        loc = ".".join(str(p) for p in err["loc"]) or tag
        raise XmlError(f"<{tag}> {loc}: {err['msg']}") from None
