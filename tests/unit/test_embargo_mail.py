"""Embargoed release mail: a personal room link per journalist, never the preview token."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest
from sqlalchemy.orm import Session

from distributor.delivery.rendering import Recipient, compile_release, staff_recipient
from distributor.embargo import tokens
from distributor.embargo.handlers import room_url
from distributor.settings import Settings
from tests.support.embargo import TERMS_SUMMARY, delivery_of, embargoed_world
from tests.support.snapshots import assert_matches_snapshot


def _parts(raw: bytes) -> tuple[str, str, str]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    assert html is not None and text is not None
    return str(message["Subject"]), html.get_content(), text.get_content()


def _recipient(session: Session, world, journalist) -> Recipient:
    delivery = delivery_of(session, world.release, journalist)
    assert delivery is not None
    return Recipient(
        delivery_id=delivery.id,
        journalist_id=journalist.id,
        email=journalist.email,
        name=journalist.name,
        verp_token=delivery.verp_token,
        matched_beats="Climate",
        is_tracking_allowed=True,
    )


def test_each_journalist_gets_their_own_room_link_and_no_preview_token(
    session: Session, settings: Settings
) -> None:
    world = embargoed_world(session, settings, requires_terms=False)
    compiled = compile_release(session, world.release.id, settings)
    seen = {}
    for person in (world.alice, world.carol):
        _, raw = compiled.message_for(_recipient(session, world, person))[1:]
        subject, html, text = _parts(raw)
        assert subject.startswith("Embargoed to ")
        own = room_url(settings, world.release.id, person.id)
        assert own in html and own in text
        assert world.release.preview_token not in raw.decode("ascii", "replace")
        assert world.release.preview_token not in html + text
        assert "/preview/" not in html + text
        # The photo is not in the mail (it is served only through the room until the lift);
        # downloads go through the room.
        assert "/media/photos/" not in html
        assert f"{own}/attachments/" in html
        assert "raised by 1.2 metres" in text  # no terms asked: the full text
        seen[person.id] = own
    assert seen[world.alice.id] != seen[world.carol.id]


def test_with_terms_the_mail_carries_the_summary_and_the_link_not_the_text(
    session: Session, settings: Settings
) -> None:
    world = embargoed_world(session, settings, requires_terms=True)
    compiled = compile_release(session, world.release.id, settings)
    _, html, text = _parts(compiled.message_for(_recipient(session, world, world.alice))[2])
    own = room_url(settings, world.release.id, world.alice.id)
    assert world.release.summary in text
    assert TERMS_SUMMARY in text
    assert "raised by 1.2 metres" not in text and "raised by 1.2 metres" not in html
    assert "plan.pdf" not in text
    assert own in html and own in text


def test_a_staff_preview_of_the_mail_carries_no_working_room_link(
    session: Session, settings: Settings
) -> None:
    world = embargoed_world(session, settings, requires_terms=False)
    compiled = compile_release(session, world.release.id, settings)
    _, html, _text = _parts(
        compiled.message_for(staff_recipient(email="ed@example.org", name="Ed", label="preview"))[2]
    )
    assert room_url(settings, world.release.id, 0) in html
    assert world.release.preview_token not in html


def test_room_tokens_are_unguessable_and_bound_to_release_and_journalist(
    settings: Settings,
) -> None:
    token = tokens.room_token(settings, 12, 34)
    assert tokens.load_room_token(settings, token) == (12, 34)
    assert tokens.room_token(settings, 12, 35) != token
    assert tokens.load_room_token(settings, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert tokens.load_room_token(settings, token[:-2]) is None
    assert tokens.load_room_token(settings, "x" * len(token)) is None
    # Swapping the id part for another journalist's keeps the old signature: refused.
    other = tokens.room_token(settings, 12, 35)
    assert tokens.load_room_token(settings, other[:11] + token[11:]) is None
    from dataclasses import replace

    assert tokens.load_room_token(replace(settings, secret_key="another-secret" * 4), token) is None


def test_the_report_link_table_never_shows_a_preview_token(session: Session) -> None:
    from distributor.reports.services import link_rows
    from distributor.tracking.links import register_links
    from tests.support import delivery_factories as f

    release = f.release(session)
    old = f"http://localhost/preview/{release.preview_token}/attachments/1/plan.pdf"
    register_links(session, release.id, [old, "https://council.example/plans"])
    urls = [row.url for row in link_rows(session, release.id)]
    assert all(release.preview_token not in url for url in urls)
    assert "http://localhost/preview/(staff preview link)/attachments/1/plan.pdf" in urls


@pytest.mark.parametrize("requires_terms", [False, True])
def test_the_embargo_room_variants_of_the_release_template_match_their_snapshots(
    requires_terms: bool,
) -> None:
    from distributor.mail.rendering import EmailRenderer
    from tests.support.email_contexts import release

    context = release()
    context["release"]["has_photo"] = True
    context["release"]["photo"] = None
    context["room"] = {
        "url": "https://news.harbourlight.example/embargo/room-token",
        "requires_terms": requires_terms,
        "terms_summary": "Nothing may be published <before> the lift & nothing shared.",
    }
    rendered = EmailRenderer().render_email("release", context)
    assert "<mj-" not in rendered.html and "</mj-" not in rendered.html
    assert "/embargo/room-token" in rendered.html and "/embargo/room-token" in rendered.text
    assert "&lt;before&gt;" in rendered.html or not requires_terms
    assert ("New flood gates" in rendered.text) is not requires_terms
    name = "release-embargo-terms" if requires_terms else "release-embargo-room"
    current = f"Subject: {rendered.subject}\n\n{rendered.text}\n---HTML---\n{rendered.html}"
    assert_matches_snapshot(name, current)
