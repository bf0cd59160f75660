from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given

from marketplace.core.families import family_of
from marketplace.events import EventDecodeError, decode, to_message
from schemas.base import Event
from schemas.listings import OfferPosted, OfferWithdrawn, RequestPosted
from schemas.partners import PartnerRegistered
from schemas.registry import EVENT_TOPIC, EVENT_TYPES, TOPIC_EVENTS, key_of
from tests.strategies import offers, requests

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_every_event_is_on_exactly_one_topic_with_a_versioned_type() -> None:
    assert len(EVENT_TYPES) == len(EVENT_TOPIC) >= 20
    for name, cls in EVENT_TYPES.items():
        assert name.rsplit(".", 1)[-1].startswith("v"), name
        assert issubclass(cls, Event)
        assert cls.__struct_config__.frozen


@given(offers())
def test_offers_round_trip_through_kafka_records(offer: OfferPosted) -> None:
    message = to_message(offer, event_id="e-1", source="/test", time=NOW, subject=offer.offer_id)
    assert message.topic == "market.listings"
    assert message.key == family_of(offer.material.code).encode()
    decoded = decode(message.topic, message.value, message.headers)
    assert decoded.event == offer
    assert decoded.envelope.type == "market.offer.posted.v1"
    assert decoded.envelope.subject == offer.offer_id


@given(requests())
def test_requests_and_their_withdrawal_share_a_key(req: RequestPosted) -> None:
    withdrawn = OfferWithdrawn(
        offer_id="o", owner_id="p", actor_id="p", material_code=req.material.code
    )
    assert key_of(req) == key_of(withdrawn)


def _offer_json(**terms_overrides: object) -> dict[str, object]:
    terms: dict[str, object] = {
        "quantity": {"amount": 12.5, "unit": "t"},
        "price": {"amount": -15.0, "currency": "EUR"},
        "available": {"start": "2026-12-01T00:00:00Z", "end": "2027-01-31T00:00:00Z"},
    }
    terms.update(terms_overrides)
    return {
        "type": "market.offer.posted.v1",
        "offer_id": "o-1",
        "owner_id": "p-1",
        "actor_id": "p-1",
        "material": {"code": "040222", "description": "cotton offcuts", "form": "bales"},
        "location": {"lat": 42.7, "lon": 23.3, "region": "BG411"},
        "terms": terms,
    }


def test_negative_price_is_a_gate_fee_and_valid() -> None:
    offer = msgspec.convert(_offer_json(), OfferPosted)
    assert offer.terms.price.amount == -15.0


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (
            {"quantity": {"amount": -1, "unit": "t"}},
            "Expected `float` > 0.0 - at `$.terms.quantity.amount`",
        ),
        ({"quantity": {"amount": 1, "unit": "barrels"}}, "Invalid enum value 'barrels'"),
        (
            {"available": {"start": "2027-01-31T00:00:00Z", "end": "2026-12-01T00:00:00Z"}},
            "window: ends before it starts",
        ),
        (
            {"available": {"start": "2026-12-01T00:00:00", "end": "2027-01-31T00:00:00"}},
            "window: times must carry a time zone",
        ),
        ({"min_lot": {"amount": 20, "unit": "t"}}, "min_lot: larger than the quantity offered"),
    ],
)
def test_bad_terms_are_refused_with_the_field(overrides: dict[str, object], reason: str) -> None:
    with pytest.raises(msgspec.ValidationError) as err:
        msgspec.convert(_offer_json(**overrides), OfferPosted)
    assert reason in str(err.value)


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        (("location", "lat"), 91.0, "Expected `float` <= 90.0 - at `$.location.lat`"),
        (("location", "lon"), -181.0, "Expected `float` >= -180.0 - at `$.location.lon`"),
        (("material", "code"), "15010", "at `$.material.code`"),
    ],
)
def test_places_off_the_globe_and_malformed_codes_are_refused(
    path: tuple[str, str], value: object, reason: str
) -> None:
    raw = _offer_json()
    section = raw[path[0]]
    assert isinstance(section, dict)
    section[path[1]] = value
    with pytest.raises(msgspec.ValidationError) as err:
        msgspec.convert(raw, OfferPosted)
    assert reason in str(err.value)


def test_decode_refuses_a_type_header_that_contradicts_the_payload() -> None:
    offer = msgspec.convert(_offer_json(), OfferPosted)
    message = to_message(offer, event_id="e-1", source="/test", time=NOW)
    forged = tuple(
        (k, b"market.offer.withdrawn.v1" if k == "ce_type" else v) for k, v in message.headers
    )
    with pytest.raises(EventDecodeError, match="does not match payload type"):
        decode(message.topic, message.value, forged)


def test_decode_refuses_an_event_on_the_wrong_topic() -> None:
    offer = msgspec.convert(_offer_json(), OfferPosted)
    message = to_message(offer, event_id="e-1", source="/test", time=NOW)
    with pytest.raises(EventDecodeError, match=r"market\.offer\.posted\.v1"):
        decode("logistics.jobs", message.value, message.headers)


# Evolution (schemas/README.md, rule 1): PartnerRegistered as it was before `sector` was added.
class PartnerRegisteredBeforeSector(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    tag_field="type",
    tag="partners.partner.registered.v1",
):
    partner_id: str
    name: str
    role: str
    country: str
    region: str | None = None
    registered_by: str


def test_an_old_consumer_reads_a_new_event() -> None:
    new = PartnerRegistered(
        partner_id="p-1",
        name="Tekstil OOD",
        role="sme",
        country="BG",
        region="BG411",
        sector="13.92",
        registered_by="op-1",
    )
    old_view = msgspec.json.decode(msgspec.json.encode(new), type=PartnerRegisteredBeforeSector)
    assert old_view.partner_id == "p-1"
    assert old_view.region == "BG411"


def test_a_new_consumer_reads_an_old_event() -> None:
    old = PartnerRegisteredBeforeSector(
        partner_id="p-2", name="Bryggeri AB", role="sme", country="SE", registered_by="op-1"
    )
    new_view = msgspec.json.decode(msgspec.json.encode(old), type=TOPIC_EVENTS["partners.registry"])
    assert isinstance(new_view, PartnerRegistered)
    assert new_view.sector is None
    assert new_view.name == "Bryggeri AB"
