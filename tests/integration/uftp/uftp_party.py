# mypy: ignore-errors
"""The other party: shapeshifter-uftp 2.4.0 (its own services, clients, codec and signing) in `.venv-uftp`.

Run by the UFTP tests as a subprocess with `.venv-uftp/bin/python` (`make uftp-venv`);
never imported by the project (the library needs FastAPI 0.136-0.139, the project pins
0.165; mypy and ruff's import checks skip it). Reads one JSON job on stdin's first line.

- `codec`: parse GridFlex's XML with the library and render it again (the test compares
  bytes), render the library's own messages, unseal GridFlex's SignedMessage and seal one.
- `agr`: the library's ShapeshifterAgrService on loopback answering GridFlex the DSO: a
  FlexRequest gets a FlexRequestResponse and a FlexOffer (the job's price and minimum
  activation factor, `offer_fraction` of each requested ISP), a FlexOrder a
  FlexOrderResponse (Accepted only if its ISPs are the offer's and its factor is allowed), a
  FlexSettlement a FlexSettlementResponse accepting every order. With `prognosis`
  ([start, duration, W] elements) it sends a D-Prognosis first and names it in its offer;
  with `metering` ({ean, kw: {ISP number: kW}}) a Metering message after an accepted order.
- `dso`: the library's ShapeshifterDsoService sending GridFlex the AGR a FlexRequest; a
  FlexOffer gets a FlexOfferResponse and a FlexOrder of its first option (`activation_factor`,
  the option's price x it, OrderReference `dso-order-1`); an Accepted FlexOrderResponse gets
  the job's FlexSettlement (its `orders`, each with the numbers the test computed). A
  D-Prognosis gets a D-PrognosisResponse: Accepted when its ISPs are exactly those of its
  local day (92/96/100, counted here with zoneinfo), else Rejected with the reason; a
  Metering a MeteringResponse Accepted.

- `validate`: parse each of GridFlex's XML messages with the library, check every attribute
  against the schema restrictions its models carry (required, pattern) and that xsd:decimal
  values have no exponent, render it again; report each failure with the message.
- `race`: the library's own `from_xml` on two threads while `sys.modules` grows (what a
  service does when it first sends): counts the valid messages it refuses. A service job
  with `churn_modules` does the same to the running service (a module a millisecond).

Services print `READY` once listening, run until stdin closes, then print one JSON line:
every message they received (as the library parsed it), every handler error, and the
library's own WARNING/ERROR log lines (`library_log`: why it refused a message).
"""

import dataclasses
import json
import logging
import re
import sys
import threading
import time
import types
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from shapeshifter_uftp import ShapeshifterAgrService, ShapeshifterDsoService, transport
from shapeshifter_uftp.uftp import (
    AcceptedRejected,
    ContractSettlement,
    ContractSettlementISP,
    ContractSettlementPeriod,
    DPrognosis,
    DPrognosisISP,
    DPrognosisResponse,
    FlexOffer,
    FlexOfferOption,
    FlexOfferOptionISP,
    FlexOfferResponse,
    FlexOfferRevocation,
    FlexOfferRevocationResponse,
    FlexOrder,
    FlexOrderISP,
    FlexOrderResponse,
    FlexOrderSettlement,
    FlexOrderSettlementISP,
    FlexOrderSettlementStatus,
    FlexRequest,
    FlexRequestISP,
    FlexRequestResponse,
    FlexSettlement,
    FlexSettlementResponse,
    Metering,
    MeteringISP,
    MeteringProfile,
    MeteringProfileEnum,
    MeteringResponse,
    MeteringUnit,
    SignedMessage,
)
from shapeshifter_uftp.uftp.messages.d_prognosis import FlexOrderStatus
from xsdata.models.datatype import XmlDate, XmlDuration

logging.getLogger("shapeshifter-uftp").setLevel(logging.WARNING)  # it logs every message at DEBUG
logging.getLogger("uvicorn.error").setLevel(logging.WARNING)

UUID1 = "11111111-2222-4333-8444-555555555555"
UUID2 = "66666666-7777-4888-9999-aaaaaaaaaaaa"
CP = "ea1.2026-12.gridflex.test:station-7"


def _plain(obj):
    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list):
        return [_plain(x) for x in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def _header(sender, recipient):
    return {
        "version": "3.1.0",
        "sender_domain": sender,
        "recipient_domain": recipient,
        "time_stamp": "2026-12-03T08:00:00+00:00",
        "message_id": UUID1,
        "conversation_id": UUID2,
    }


def library_samples():
    """One of each message the library renders itself (GridFlex decodes them)."""
    flex = {"isp_duration": XmlDuration("PT15M"), "period": XmlDate(2026, 12, 3), "congestion_point": CP}
    dso, agr = _header("dso.test", "gridflex.test"), _header("agr.test", "gridflex.test")
    return [
        FlexRequest(
            **dso,
            **flex,
            revision=2,
            expiration_date_time="2026-12-03T15:00:00+00:00",
            isps=[
                FlexRequestISP(disposition="Requested", min_power=-20000, max_power=0, start=69, duration=2)
            ],
        ),
        FlexRequestResponse(**agr, flex_request_message_id=UUID1),
        FlexOffer(
            **agr,
            **flex,
            expiration_date_time="2026-12-03T15:00:00+00:00",
            flex_request_message_id=UUID1,
            offer_options=[
                FlexOfferOption(
                    option_reference="opt-1",
                    price=Decimal("12.5"),
                    min_activation_factor=Decimal("0.5"),
                    isps=[FlexOfferOptionISP(power=-15000, start=69, duration=2)],
                )
            ],
        ),
        FlexOfferResponse(
            **dso, result=AcceptedRejected.REJECTED, rejection_reason="too late", flex_offer_message_id=UUID1
        ),
        FlexOfferRevocation(**agr, flex_offer_message_id=UUID1),
        FlexOfferRevocationResponse(**dso, flex_offer_revocation_message_id=UUID1),
        FlexOrder(
            **dso,
            **flex,
            flex_offer_message_id=UUID1,
            price=Decimal("6.25"),
            currency="EUR",
            order_reference="ord-1",
            option_reference="opt-1",
            activation_factor=Decimal("0.5"),
            isps=[FlexOrderISP(power=-15000, start=69, duration=2)],
        ),
        FlexOrderResponse(**agr, flex_order_message_id=UUID1),
        FlexSettlement(
            **dso,
            period_start=XmlDate(2026, 12, 1),
            period_end=XmlDate(2026, 12, 31),
            currency="EUR",
            flex_order_settlements=[
                FlexOrderSettlement(
                    order_reference="ord-1",
                    period=XmlDate(2026, 12, 3),
                    congestion_point=CP,
                    price=Decimal("6.25"),
                    penalty=Decimal("1.5"),
                    net_settlement=Decimal("4.75"),
                    isps=[
                        FlexOrderSettlementISP(
                            start=69,
                            baseline_power=50000,
                            ordered_flex_power=-7500,
                            actual_power=44000,
                            delivered_flex_power=-6000,
                            power_deficiency=-1500,
                        )
                    ],
                )
            ],
            contract_settlements=[
                ContractSettlement(
                    periods=[
                        ContractSettlementPeriod(
                            period=XmlDate(2026, 12, 3),
                            isps=[ContractSettlementISP(start=69, reserved_power=0)],
                        )
                    ]
                )
            ],
        ),
        FlexSettlementResponse(
            **agr,
            flex_settlement_message_id=UUID1,
            flex_order_settlement_statuses=[
                FlexOrderSettlementStatus(
                    order_reference="ord-1", disposition="Disputed", dispute_reason="meter gap"
                )
            ],
        ),
        DPrognosis(**agr, **flex, revision=1, isps=[DPrognosisISP(power=50000, start=1, duration=96)]),
        DPrognosisResponse(
            **dso,
            d_prognosis_message_id=UUID1,
            flex_order_statuses=[FlexOrderStatus(flex_order_message_id=UUID2, is_validated=True)],
        ),
        Metering(
            **agr,
            revision=1,
            isp_duration=XmlDuration("PT15M"),
            time_zone="Europe/Amsterdam",
            period=XmlDate(2026, 12, 3),
            ean="E123456789012345678",
            profiles=[
                MeteringProfile(
                    profile_type=MeteringProfileEnum.POWER,
                    unit=MeteringUnit.K_W,
                    isps=[
                        MeteringISP(start=73, value=Decimal("32.5")),
                        MeteringISP(start=74, value=Decimal("30")),
                    ],
                )
            ],
        ),
        MeteringResponse(**dso, metering_message_id=UUID1),
    ]


def codec(job):
    out = {"rerendered": [], "errors": []}
    for xml in job["ours"]:
        try:
            out["rerendered"].append(transport.to_xml(transport.from_xml(xml.encode())))
        except Exception as exc:
            out["rerendered"].append(None)
            out["errors"].append(f"{type(exc).__name__}: {exc}")
    out["samples"] = [transport.to_xml(m) for m in library_samples()]
    # GridFlex's SignedMessage: the library's parser and unseal under GridFlex's public key
    signed = transport.from_xml(job["signed"].encode())
    out["unsealed"] = transport.to_xml(transport.unseal_message(signed.body, job["gridflex_public_key"]))
    out["signed_sender"] = [signed.sender_domain, str(signed.sender_role)]
    # and one the library seals, for GridFlex to open
    sealed = transport.seal_message(library_samples()[0], job["library_private_key"])
    out["library_signed"] = transport.to_xml(
        SignedMessage(sender_domain="dso.test", sender_role="DSO", body=sealed)
    )
    return out


DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


def _restrictions(obj, where):
    """What in `obj` breaks its model's schema restrictions (required, pattern), as reasons."""
    out = []
    for f in dataclasses.fields(obj):
        value, meta = getattr(obj, f.name), f.metadata
        name = f"{where}@{meta.get('name', f.name)}"
        if value is None and meta.get("required"):
            out.append(f"{name}: required")
        elif isinstance(value, str) and "pattern" in meta and not re.fullmatch(meta["pattern"], value):
            out.append(f"{name}: {value!r} does not match {meta['pattern']}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    out.extend(_restrictions(item, f"{name}[{i}]"))
    return out


def validate(job):
    """Each XML: parsed by the library, within its restrictions, rendered back to the same bytes."""
    failures = []
    for xml in job["ours"]:
        try:
            msg = transport.from_xml(xml.encode())
        except Exception as exc:
            failures.append({"xml": xml, "error": f"{type(exc).__name__}: {exc}"})
            continue
        broken = _restrictions(msg, type(msg).__name__)
        for m in re.finditer(r'(Value|Price|Penalty|NetSettlement|\w*Factor)="([^"]*)"', xml):
            if not DECIMAL.match(m.group(2)):
                broken.append(f"{m.group(1)}: {m.group(2)!r} is not an xsd:decimal")
        if transport.to_xml(msg) != xml:
            broken.append("the library renders it differently")
        if broken:
            failures.append({"xml": xml, "error": "; ".join(broken)})
    return {"checked": len(job["ours"]), "failures": failures}


def race(job):
    """The library's parser on two threads while modules are imported; the valid messages it refused."""
    xmls = [x.encode() for x in job["ours"]]
    refused, lock = [], threading.Lock()
    deadline = time.monotonic() + job.get("seconds", 10.0)

    def parse(k):
        i = 0
        while time.monotonic() < deadline and not refused:
            sys.modules[f"_gridflex_race_{k}_{i}"] = types.ModuleType("m")  # as a lazy import would
            try:
                transport.from_xml(xmls[(k + i) % len(xmls)])
            except Exception as exc:
                with lock:
                    refused.append(f"{type(exc).__name__}: {exc}")
            i += 1

    threads = [threading.Thread(target=parse, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"refused": refused}


class _Recording:
    """Records every message; a handler's exception is kept (the library would only log it)."""

    def setup(self, job):
        self.job = job
        self.received = []
        self.errors = []
        self.lock = threading.Lock()

    def record(self, message):
        with self.lock:
            self.received.append({"type": type(message).__name__, **_plain(message)})

    def guarded(self, fn, message):
        self.record(message)
        try:
            fn(message)
        except Exception as exc:
            with self.lock:
                self.errors.append(f"{type(message).__name__}: {type(exc).__name__}: {exc}")


def _record_all(cls):
    for name in list(getattr(cls, "__abstractmethods__", ())):
        if name not in cls.__dict__:
            setattr(cls, name, lambda self, message: self.record(message))
    cls.__abstractmethods__ = frozenset()
    return cls


@_record_all
class Agr(_Recording, ShapeshifterAgrService):
    def process_flex_request(self, message):
        self.guarded(self._request, message)

    def _request(self, req):
        dso = self.dso_client(req.sender_domain)
        dso.send_flex_request_response(
            FlexRequestResponse(conversation_id=req.conversation_id, flex_request_message_id=req.message_id)
        )
        frac = self.job.get("offer_fraction", 1.0)
        isps = [
            FlexOfferOptionISP(power=round(i.min_power * frac), start=i.start, duration=i.duration)
            for i in req.isps
            if i.disposition == "Requested"
        ]
        self.offered = {"isps": [(i.power, i.start, i.duration) for i in isps]}
        prognosis_id = None
        if "prognosis" in self.job:
            prognosis = DPrognosis(
                conversation_id=req.conversation_id,
                isp_duration=req.isp_duration,
                time_zone=req.time_zone,
                period=req.period,
                congestion_point=req.congestion_point,
                revision=1,
                isps=[DPrognosisISP(start=a, duration=d, power=w) for a, d, w in self.job["prognosis"]],
            )
            dso.send_d_prognosis(prognosis)
            prognosis_id = prognosis.message_id
        dso.send_flex_offer(
            FlexOffer(
                conversation_id=req.conversation_id,
                isp_duration=req.isp_duration,
                time_zone=req.time_zone,
                period=req.period,
                congestion_point=req.congestion_point,
                expiration_date_time=req.expiration_date_time,
                flex_request_message_id=req.message_id,
                d_prognosis_message_id=prognosis_id,
                offer_options=[
                    FlexOfferOption(
                        option_reference="agr-opt-1",
                        price=Decimal(str(self.job["price_eur"])),
                        min_activation_factor=Decimal(str(self.job.get("min_activation_factor", 1.0))),
                        isps=isps,
                    )
                ],
            )
        )

    def process_flex_order(self, message):
        self.guarded(self._order, message)

    def _order(self, order):
        got = [(i.power, i.start, i.duration) for i in order.isps]
        reason = None
        if got != self.offered["isps"]:
            reason = f"ISPs {got} are not the offered {self.offered['isps']}"
        elif order.activation_factor < Decimal(str(self.job.get("min_activation_factor", 1.0))):
            reason = f"activation factor {order.activation_factor} below the minimum"
        dso = self.dso_client(order.sender_domain)
        dso.send_flex_order_response(
            FlexOrderResponse(
                conversation_id=order.conversation_id,
                flex_order_message_id=order.message_id,
                result=AcceptedRejected.REJECTED if reason else AcceptedRejected.ACCEPTED,
                rejection_reason=reason,
            )
        )
        m = self.job.get("metering")
        if m is not None and reason is None:
            dso.send_metering(
                Metering(
                    conversation_id=order.conversation_id,
                    revision=1,
                    isp_duration=XmlDuration("PT15M"),
                    time_zone=order.time_zone,
                    period=order.period,
                    ean=m["ean"],
                    profiles=[
                        MeteringProfile(
                            profile_type=MeteringProfileEnum.POWER,
                            unit=MeteringUnit.K_W,
                            isps=[
                                MeteringISP(start=int(n), value=Decimal(str(v))) for n, v in m["kw"].items()
                            ],
                        )
                    ],
                )
            )

    def process_flex_settlement(self, message):
        self.guarded(self._settlement, message)

    def _settlement(self, s):
        self.dso_client(s.sender_domain).send_flex_settlement_response(
            FlexSettlementResponse(
                conversation_id=s.conversation_id,
                flex_settlement_message_id=s.message_id,
                flex_order_settlement_statuses=[
                    FlexOrderSettlementStatus(order_reference=o.order_reference, disposition="Accepted")
                    for o in s.flex_order_settlements
                ],
            )
        )


def _isps_of_day(period, tz):
    """ISPs of the local day: the hours between its midnight and the next (DST: 23 or 25)."""
    zone, day = ZoneInfo(tz), datetime.fromisoformat(period)
    start = day.replace(tzinfo=zone).timestamp()
    end = (day + timedelta(days=1)).replace(tzinfo=zone).timestamp()
    return round((end - start) / 900)


@_record_all
class Dso(_Recording, ShapeshifterDsoService):
    def process_d_prognosis(self, message):
        self.guarded(self._prognosis, message)

    def _prognosis(self, p):
        n = _isps_of_day(str(p.period), p.time_zone)
        got = sorted(k for i in p.isps for k in range(i.start, i.start + i.duration))
        reason = None if got == list(range(1, n + 1)) else f"ISPs {got[:3]}..{got[-3:]} are not 1..{n}"
        self.agr_client(p.sender_domain).send_d_prognosis_response(
            DPrognosisResponse(
                conversation_id=p.conversation_id,
                d_prognosis_message_id=p.message_id,
                result=AcceptedRejected.REJECTED if reason else AcceptedRejected.ACCEPTED,
                rejection_reason=reason,
            )
        )

    def process_metering(self, message):
        self.guarded(self._metering, message)

    def _metering(self, m):
        self.agr_client(m.sender_domain).send_metering_response(
            MeteringResponse(conversation_id=m.conversation_id, metering_message_id=m.message_id)
        )

    def process_flex_offer(self, message):
        self.guarded(self._offer, message)

    def _offer(self, offer):
        agr = self.agr_client(offer.sender_domain)
        agr.send_flex_offer_response(
            FlexOfferResponse(conversation_id=offer.conversation_id, flex_offer_message_id=offer.message_id)
        )
        opt = offer.offer_options[0]
        factor = Decimal(str(self.job.get("activation_factor", 1.0)))
        agr.send_flex_order(
            FlexOrder(
                conversation_id=offer.conversation_id,
                isp_duration=offer.isp_duration,
                time_zone=offer.time_zone,
                period=offer.period,
                congestion_point=offer.congestion_point,
                flex_offer_message_id=offer.message_id,
                price=opt.price * factor,
                currency=offer.currency,
                order_reference="dso-order-1",
                option_reference=opt.option_reference,
                activation_factor=factor,
                isps=[FlexOrderISP(power=i.power, start=i.start, duration=i.duration) for i in opt.isps],
            )
        )

    def process_flex_order_response(self, message):
        self.guarded(self._order_response, message)

    def _order_response(self, resp):
        if resp.result != AcceptedRejected.ACCEPTED or "settlement" not in self.job:
            return
        s = self.job["settlement"]
        period = XmlDate.from_string(s["period"])
        self.agr_client(resp.sender_domain).send_flex_settlement(
            FlexSettlement(
                period_start=period,
                period_end=period,
                currency="EUR",
                flex_order_settlements=[
                    FlexOrderSettlement(
                        order_reference=o["order_reference"],
                        period=period,
                        congestion_point=s["congestion_point"],
                        price=Decimal(o["price"]),
                        penalty=Decimal(o["penalty"]),
                        net_settlement=Decimal(o["net"]),
                        isps=[FlexOrderSettlementISP(**i) for i in o["isps"]],
                    )
                    for o in s["orders"]
                ],
                contract_settlements=[
                    ContractSettlement(
                        periods=[
                            ContractSettlementPeriod(
                                period=period,
                                isps=[ContractSettlementISP(start=1, reserved_power=0)],
                            )
                        ]
                    )
                ],
            )
        )

    def send_request(self):
        r = self.job["request"]
        self.agr_client(self.job["peer"]["domain"]).send_flex_request(
            FlexRequest(
                isp_duration=XmlDuration("PT15M"),
                period=XmlDate.from_string(r["period"]),
                congestion_point=r["congestion_point"],
                revision=1,
                expiration_date_time=r["expiration"],
                isps=[FlexRequestISP(disposition="Requested", **i) for i in r["isps"]],
            )
        )


class _Kept(logging.Handler):
    """The library's WARNING and ERROR lines (its reason for a 400, say), for the test's failure text."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage()[:4000])


def _churn_modules(stop):
    """A module imported every millisecond, as a service's lazy imports do now and then (`churn_modules`)."""
    i = 0
    while not stop.wait(0.001):
        sys.modules[f"_gridflex_churn_{i}"] = types.ModuleType("m")
        i += 1


def serve(job, cls, own_role):
    peer = job["peer"]
    kept = _Kept()
    logging.getLogger("shapeshifter-uftp").addHandler(kept)
    service = cls(
        sender_domain=job["domain"],
        signing_key=job["private_key"],
        key_lookup_function=lambda domain, role: peer["public_key"] if domain == peer["domain"] else None,
        endpoint_lookup_function=lambda domain, role: peer["endpoint"],
        host="127.0.0.1",
        port=job["port"],
    )
    service.setup(job)
    stop = threading.Event()
    if job.get("churn_modules"):
        threading.Thread(target=_churn_modules, args=(stop,), daemon=True).start()
    with service:
        print("READY", flush=True)
        if own_role == "DSO":
            try:
                service.send_request()
            except Exception as exc:
                service.errors.append(f"send FlexRequest: {type(exc).__name__}: {exc}")
        sys.stdin.read()  # until the test closes stdin
    stop.set()
    return {"received": service.received, "errors": service.errors, "library_log": kept.lines}


def main():
    job = json.loads(sys.stdin.readline())
    if job["mode"] == "codec":
        out = codec(job)
    elif job["mode"] == "validate":
        out = validate(job)
    elif job["mode"] == "race":
        out = race(job)
    elif job["mode"] == "agr":
        out = serve(job, Agr, "AGR")
    else:
        out = serve(job, Dso, "DSO")
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
