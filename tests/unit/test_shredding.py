"""The sealing format of crypto-shredding (marketplace/translate/shredding.py, #21 item 8): what a
producer seals, what a consumer opens with the key, and what it shows without it."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from cryptography.fernet import Fernet

from marketplace.events import decode, to_message
from marketplace.translate import shredding
from schemas.base import Event
from schemas.common import Location, Material, Money, Quantity, Sealed, Window
from schemas.deals import TransportConfirmed
from schemas.facilitators import ListingNudged
from schemas.feedback import FeedbackGiven
from schemas.listings import OfferPosted, OfferTerms
from schemas.partners import (
    LegalDataDeclared,
    LegalDataDeclaredV2,
    NotificationIssued,
    PartnerRegistered,
)

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
KEY = Fernet.generate_key()
OTHER = Fernet.generate_key()


def _registered(name: str = "Ivana Petrova ET") -> PartnerRegistered:
    return PartnerRegistered(
        partner_id="p-1", name=name, role="sme", country="BG", registered_by="cli"
    )


def _offer() -> OfferPosted:
    return OfferPosted(
        offer_id="o-1",
        owner_id="p-1",
        actor_id="f-9",
        material=Material(
            code="150102",
            description="PET bottles from Ivana's shop",
            quality_notes="call Ivana on +359 88 123",
        ),
        location=Location(lat=42.7, lon=23.3),
        terms=OfferTerms(
            quantity=Quantity(amount=2, unit="t"),
            price=Money(amount=10, currency="EUR"),
            available=Window(start=AT, end=datetime(2026, 12, 30, tzinfo=UTC)),
        ),
        certifications=("EN 15343",),
    )


def _roundtrip(event: Event) -> Event:
    """Through Kafka's form and back: what a consumer decodes."""
    message = to_message(event, event_id="e-1", source="/test", time=AT, subject="s")
    return decode(message.topic, message.value, message.headers).event


def test_a_name_is_sealed_under_the_organisations_key_and_opens_with_it() -> None:
    sealed = shredding.seal(_registered(), KEY)
    assert isinstance(sealed, PartnerRegistered)
    assert sealed.name == ""
    assert sealed.sealed is not None
    assert sealed.sealed.subject == "partner:p-1"
    raw = msgspec.json.encode(sealed)
    assert b"Ivana" not in raw
    assert b"Petrova" not in raw
    opened = shredding.open_event(_roundtrip(sealed), {"partner:p-1": KEY})
    assert isinstance(opened, PartnerRegistered)
    assert opened.name == "Ivana Petrova ET"
    assert opened.sealed is None


def test_without_the_key_every_sealed_field_reads_erased_and_nothing_fails() -> None:
    sealed = shredding.seal(_offer(), KEY)
    for keys in ({}, {"partner:p-1": OTHER}):
        opened = shredding.open_event(sealed, keys)
        assert isinstance(opened, OfferPosted)
        assert opened.material.description == shredding.ERASED
        assert opened.material.quality_notes == shredding.ERASED
        # What is not personal stays as it was, and readable.
        assert opened.material.code == "150102"
        assert opened.certifications == ("EN 15343",)


def test_a_listing_is_sealed_for_its_owner_even_when_a_facilitator_posts_it() -> None:
    sealed = shredding.seal(_offer(), KEY)
    assert isinstance(sealed, OfferPosted)
    assert sealed.sealed is not None
    assert sealed.sealed.subject == "partner:p-1"
    assert sealed.material.description == ""
    assert sealed.material.quality_notes == ""
    raw = msgspec.json.encode(sealed)
    assert b"Ivana" not in raw
    assert b"+359" not in raw
    opened = shredding.open_event(_roundtrip(sealed), {"partner:p-1": KEY})
    assert opened == _offer()


def test_a_text_someone_writes_is_sealed_for_the_organisation_that_acted() -> None:
    nudge = ListingNudged(
        partner_id="sme-1",
        facilitator_id="f-9",
        actor_id="f-9",
        listing_id="o-1",
        kind="offer",
        material_code="150102",
        days_unchanged=40,
        message="Maria from the association says hello",
    )
    sealed = shredding.seal(nudge, KEY)
    assert isinstance(sealed, ListingNudged)
    assert sealed.sealed is not None
    assert sealed.sealed.subject == "partner:f-9"
    assert sealed.message == ""
    # The notification to the SME carries the same sealed text and "" in its data.
    assert shredding.notification_sealed(sealed) == sealed.sealed
    note = NotificationIssued(
        notification_id="n-1",
        partner_id="sme-1",
        kind="listing.nudged",
        subject_id="o-1",
        cause_event_id="e-1",
        summary="Your offer has not changed",
        data={"listing_id": "o-1", "message": ""},
        sealed=sealed.sealed,
    )
    opened = shredding.open_event(_roundtrip(note), {"partner:f-9": KEY})
    assert isinstance(opened, NotificationIssued)
    assert opened.data == {"listing_id": "o-1", "message": "Maria from the association says hello"}
    gone = shredding.open_event(note, {})
    assert isinstance(gone, NotificationIssued)
    assert gone.data == {"listing_id": "o-1", "message": shredding.ERASED}


def test_legal_data_becomes_v2_and_opens_as_v1() -> None:
    legal = LegalDataDeclared(
        partner_id="p-1",
        actor_id="p-1",
        legal_name="Ivana Petrova ET",
        street="ul. Vitosha 1",
        postcode="1000",
        city="Sofia",
        country="BG",
        vat_number="BG123456789",
    )
    sealed = shredding.seal(legal, KEY)
    assert isinstance(sealed, LegalDataDeclaredV2)
    raw = msgspec.json.encode(sealed)
    assert b"Vitosha" not in raw
    assert b"BG123456789" not in raw
    assert shredding.open_event(_roundtrip(sealed), {"partner:p-1": KEY}) == legal
    gone = shredding.open_event(sealed, {})
    assert isinstance(gone, LegalDataDeclared)
    assert (gone.legal_name, gone.street, gone.city) == (shredding.ERASED,) * 3
    assert gone.vat_number is None
    assert gone.country == "BG"


def test_an_event_with_nothing_personal_filled_in_is_left_as_it_is() -> None:
    given = FeedbackGiven(
        feedback_id="f-1",
        match_id="m-1",
        material_code="150102",
        partner_id="p-1",
        actor_id="p-1",
        side="buyer",
        rating=5,
        reason="quantity",
    )
    assert shredding.seal(given, KEY) is given
    assert shredding.open_event(given, {}) is given


def test_an_event_from_before_sealing_still_decodes_and_reads_as_it_was() -> None:
    old = _registered("Zelen Fabrik AD")
    again = _roundtrip(old)
    assert again == old
    assert shredding.open_event(again, {}) == old


def test_a_tampered_token_reads_as_erased() -> None:
    sealed = shredding.seal(_registered(), KEY)
    assert isinstance(sealed, PartnerRegistered)
    assert sealed.sealed is not None
    token = sealed.sealed.token
    bad = msgspec.structs.replace(
        sealed, sealed=Sealed(subject="partner:p-1", token=token[:-8] + "AAAAAAA=")
    )
    opened = shredding.open_event(bad, {"partner:p-1": KEY})
    assert isinstance(opened, PartnerRegistered)
    assert opened.name == shredding.ERASED


@pytest.mark.parametrize("subject", ["p-1", "org:p-1", "partner:", "partner:a b"])
def test_a_sealed_subject_that_names_no_organisation_is_refused(subject: str) -> None:
    document = {"subject": subject, "token": "x"}
    with pytest.raises(msgspec.ValidationError, match=r"\$\.subject"):
        msgspec.json.decode(msgspec.json.encode(document), type=Sealed)


def test_the_longest_texts_sealed_still_decode_from_the_topic() -> None:
    """Each text at its longest, in characters that JSON escapes (6 bytes each): the sealed
    event is still a valid record for every consumer."""
    worst = "\x01" * 2000
    nudge = ListingNudged(
        partner_id="sme-1",
        facilitator_id="f-9",
        actor_id="f-9",
        listing_id="o-1",
        kind="offer",
        material_code="150102",
        days_unchanged=40,
        message=worst,
    )
    listing = msgspec.structs.replace(
        _offer(),
        material=Material(code="150102", description="\x02" * 200, quality_notes=worst),
    )
    for event in (nudge, listing):
        keys = {shredding.subject_of(event): KEY}
        assert shredding.open_event(_roundtrip(shredding.seal(event, KEY)), keys) == event


def test_a_carriers_note_is_sealed_for_the_carrier() -> None:
    confirmed = TransportConfirmed(
        match_id="m-1",
        job_id="j-1",
        carrier_id="c-7",
        stage="delivery",
        weight_t=3.9,
        at=AT,
        note="driver Georgi, call +359 88 777",
        seller_id="s-1",
        buyer_id="b-1",
    )
    sealed = shredding.seal(confirmed, KEY)
    assert isinstance(sealed, TransportConfirmed)
    assert sealed.sealed is not None
    assert sealed.sealed.subject == "partner:c-7"
    assert b"Georgi" not in msgspec.json.encode(sealed)
    assert shredding.open_event(_roundtrip(sealed), {"partner:c-7": KEY}) == confirmed
