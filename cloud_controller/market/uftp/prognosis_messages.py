"""UFTP's D-Prognosis and Metering (Shapeshifter 3.1.0), the AGR → DSO messages settlement reads.

Why they matter here: an offer's settlement needs a baseline and an actual. A
**D-Prognosis** is the AGR's own prognosis of its portfolio's power at a congestion point,
for every ISP of a day (USEF: "the FSP's own prognosis" baseline; a FlexOffer names it by
`D-PrognosisMessageID`). A **Metering** message carries one meter's (EAN) measured power
per ISP of a day (`ProfileType="Power"`, kW). Models as in `messages.py`: fields in XML
order under their XML names, so the codec writes what shapeshifter-uftp 2.4.0 writes.
Signs: D-Prognosis `Power` in W, positive = consumption; Metering `Power` in kW, import −
export.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from cloud_controller.market.uftp.messages import (
    MAX_ITEMS,
    Count,
    Date,
    IspNo,
    PayloadMessage,
    Uuid,
    Watts,
    _Flex,
    _known_zone,
    _Response,
    _Xml,
)

__all__ = [
    "PROGNOSIS_TYPES",
    "DPrognosis",
    "DPrognosisIsp",
    "DPrognosisResponse",
    "FlexOrderStatus",
    "Metering",
    "MeteringIsp",
    "MeteringProfile",
    "MeteringResponse",
]

Ean = Annotated[str, Field(pattern=r"^[Ee][0-9]{18}$")]


class DPrognosisIsp(_Xml):
    """The portfolio's power in ISPs `start`..`start+duration-1`, W (positive = consumption)."""

    TAG = "ISP"
    power_w: Watts = Field(alias="Power")
    start: IspNo = Field(alias="Start")
    duration: Count = Field(default=1, alias="Duration")


class DPrognosis(_Flex):
    """The AGR's prognosis at a congestion point for a whole day (one revision of it)."""

    TAG = "D-Prognosis"
    isps: list[DPrognosisIsp] = Field(alias="ISP", min_length=1, max_length=MAX_ITEMS)
    revision: int = Field(alias="Revision", ge=0, le=10**9)


class FlexOrderStatus(_Xml):
    """The DSO's view of one order the prognosis includes (validated or not)."""

    TAG = "FlexOrderStatus"
    flex_order_message_id: Uuid = Field(alias="FlexOrderMessageID")
    is_validated: bool = Field(alias="IsValidated")


class DPrognosisResponse(_Response):
    """The DSO's receipt of a D-Prognosis (rejected with the reason when it cannot be used)."""

    TAG = "D-PrognosisResponse"
    d_prognosis_message_id: Uuid = Field(alias="D-PrognosisMessageID")
    flex_order_statuses: list[FlexOrderStatus] = Field(
        default=[], alias="FlexOrderStatus", max_length=MAX_ITEMS
    )


class MeteringIsp(_Xml):
    """One ISP's value in the profile's unit."""

    TAG = "ISP"
    start: IspNo = Field(alias="Start")
    value: Decimal = Field(alias="Value", allow_inf_nan=False, max_digits=24)


class MeteringProfile(_Xml):
    """One profile of a meter's day; GridFlex reads `Power` in kW (mean power per ISP)."""

    TAG = "Profile"
    isps: list[MeteringIsp] = Field(alias="ISP", min_length=1, max_length=MAX_ITEMS)
    profile_type: Literal[
        "Power", "ImportEnergy", "ExportEnergy", "ImportMeterReading", "ExportMeterReading"
    ] = Field(alias="ProfileType")
    unit: Literal["kW", "kWh"] = Field(alias="Unit")


class Metering(PayloadMessage):
    """One meter's (EAN) metered data for one day, per ISP."""

    TAG = "Metering"
    profiles: list[MeteringProfile] = Field(alias="Profile", min_length=1, max_length=8)
    revision: int = Field(alias="Revision", ge=0, le=10**9)
    isp_duration: Literal["PT15M"] = Field(default="PT15M", alias="ISP-Duration")
    time_zone: Annotated[str, AfterValidator(_known_zone)] = Field(
        default="Europe/Amsterdam",
        alias="TimeZone",
        pattern=r"^(Africa|America|Australia|Europe|Pacific)/[a-zA-Z0-9_/]{3,}$",
    )
    currency: str | None = Field(default=None, alias="Currency", pattern=r"^[A-Z]{3}$")
    period: Date = Field(alias="Period")
    ean: Ean = Field(alias="EAN")

    def power_kw(self) -> dict[int, float] | None:
        """ISP number -> mean kW from the `Power` profile (kW); None without one."""
        for p in self.profiles:
            if p.profile_type == "Power" and p.unit == "kW":
                return {i.start: float(i.value) for i in p.isps}
        return None


class MeteringResponse(_Response):
    """The DSO's receipt of a Metering message."""

    TAG = "MeteringResponse"
    metering_message_id: Uuid = Field(alias="MeteringMessageID")


#: tag -> model, added to the codec's `MESSAGE_TYPES`
PROGNOSIS_TYPES: dict[str, type[PayloadMessage]] = {
    m.TAG: m for m in (DPrognosis, DPrognosisResponse, Metering, MeteringResponse)
}
