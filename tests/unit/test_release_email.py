"""The release mail: every header STANDARDS.md asks for, escaping, embargo, tracking, DKIM."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from email.message import EmailMessage
from email.utils import parseaddr, parsedate_to_datetime
from html import unescape
from typing import Any

import dkim
import pytest
from sqlalchemy.orm import Session

from distributor.audience.tokens import load_preferences_token, load_unsubscribe_token
from distributor.delivery.mime import html_to_text
from distributor.delivery.rendering import (
    HTML_SIZE_WARNING,
    CompiledRelease,
    Recipient,
    compile_release,
)
from distributor.mail import verp
from distributor.mail.rendering import EmailRenderer
from distributor.settings import Settings
from distributor.tracking.links import click_url, pixel_url
from tests.support import delivery_factories as f
from tests.support.email_contexts import CONTEXTS


def recipient(journalist_id: int, **overrides: Any) -> Recipient:
    values: dict[str, Any] = {
        "delivery_id": 7,
        "journalist_id": journalist_id,
        "email": "jane@example.org",
        "name": "Jane Doe",
        "verp_token": "AbC123_-xyz",
        "matched_beats": "Climate, Coastal towns",
        "is_tracking_allowed": True,
    }
    values.update(overrides)
    return Recipient(**values)


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    assert html is not None and text is not None
    return html.get_content(), text.get_content()


@pytest.fixture()
def compiled(session: Session, settings: Settings) -> tuple[CompiledRelease, int]:
    f.organisation(session, settings)
    release = f.release(session)
    journalist = f.journalist(session)
    return compile_release(session, release.id, settings), journalist.id


def test_every_message_carries_the_headers_bulk_mail_needs(
    compiled: tuple[CompiledRelease, int], settings: Settings
) -> None:
    release, jid = compiled
    envelope_from, message_id, raw = release.message_for(recipient(jid))

    bounce = verp.make(settings, verp.BOUNCE, verp.DELIVERY, 7)
    assert envelope_from == f"bounces+{bounce}@{settings.bounce_domain}"
    m = parse(raw)
    assert m["Message-ID"] == message_id
    assert re.fullmatch(rf"<[^@<>\s]+@{re.escape(settings.from_domain)}>", message_id)
    sent = parsedate_to_datetime(m["Date"])
    assert abs((sent - dt.datetime.now(dt.UTC)).total_seconds()) < 60
    assert parseaddr(m["From"]) == (settings.org_name, settings.mail_from)
    assert m["Reply-To"] == settings.press_email
    assert parseaddr(m["To"]) == ("Jane Doe", "jane@example.org")
    assert len(m.get_all("To") or []) == 1 and m["Cc"] is None and m["Bcc"] is None
    assert m["Subject"] == "Sea wall to be raised before winter"
    unsubscribe = m["List-Unsubscribe"]
    https_url, mailto = re.fullmatch(r"<([^>]+)>,\s*<([^>]+)>", unsubscribe).groups()
    assert https_url.startswith(f"{settings.public_base_url}/unsubscribe/")
    assert load_unsubscribe_token(settings, https_url.rsplit("/", 1)[1]) == jid
    unsub = verp.make(settings, verp.UNSUBSCRIBE, verp.DELIVERY, 7)
    assert mailto == f"mailto:unsubscribe+{unsub}@{settings.bounce_domain}?subject=unsubscribe"
    assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert m["List-Id"].endswith(f"<releases.{settings.from_domain}>")
    assert m["Precedence"] == "bulk"
    assert m["Feedback-ID"] and m["Feedback-ID"].endswith(f":release:{settings.from_domain}")
    assert m["Auto-Submitted"] is None
    assert m["MIME-Version"] == "1.0"
    assert m.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in m.iter_parts()] == ["text/plain", "text/html"]

    html, text = parts(m)
    assert "Sea wall to be raised before winter" in text
    assert "Portmere's sea wall will be raised by 1.2 metres" in text
    assert https_url in text and https_url in html
    prefs = re.search(rf"{re.escape(settings.public_base_url)}/preferences/([\w.-]+)", html)
    assert prefs and load_preferences_token(settings, prefs.group(1)) == jid


def test_wire_format_is_crlf_seven_bit_and_short_lined(
    compiled: tuple[CompiledRelease, int],
) -> None:
    release, jid = compiled
    _, _, raw = release.message_for(recipient(jid, name="Zoë Ørsted", matched_beats="Économie"))
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert raw.isascii(), "quoted-printable keeps the message 7-bit"
    head, body = raw.split(b"\r\n\r\n", 1)
    assert max(len(line) for line in head.split(b"\r\n")) <= 200  # URLs cannot be folded
    assert max(len(line) for line in body.split(b"\r\n")) <= 76  # RFC 2045 6.7
    m = parse(raw)
    assert parseaddr(m["To"])[0] == "Zoë Ørsted"
    html, text = parts(m)
    assert "Zo&#235; &#216;rsted" in html and "Zoë Ørsted" in unescape(html)
    assert "Zoë Ørsted" in text
    assert "you follow Économie" in text


def test_long_names_with_equals_signs_stay_valid_quoted_printable(
    compiled: tuple[CompiledRelease, int],
) -> None:
    release, jid = compiled
    name = "Zoë = Ørsted " * 20
    _, _, raw = release.message_for(recipient(jid, name=name, matched_beats="A=B " * 30))
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    html, text = parts(parse(raw))
    assert " ".join(name.split()) in text and " ".join(name.split()) in unescape(html)
    assert "you follow " + " ".join(("A=B " * 30).split()) in text


def test_no_line_of_a_message_starts_with_a_dot_so_smtp_needs_no_stuffing(
    session: Session, settings: Settings
) -> None:
    f.organisation(session, settings)
    dotted = "<p>.Leading dot</p>\n." + "x" * 74 + "\n<p>...and " + ". " * 60 + "</p>"
    release = f.release(session, title=".NET summit", body_html=dotted)
    journalist = f.journalist(session)
    compiled = compile_release(session, release.id, settings)
    assert compiled.is_dot_safe
    _, _, raw = compiled.message_for(
        recipient(journalist.id, name=".dot " + "." * 90, matched_beats=".Beats, ..more")
    )
    assert not raw.startswith(b".") and b"\n." not in raw
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    html, text = parts(parse(raw))
    assert "...and" in text and ".dot " + "." * 90 in text
    assert ".NET summit" in text and "...and" in html


def test_each_recipient_gets_their_own_tokens_and_nothing_else(
    session: Session, settings: Settings, compiled: tuple[CompiledRelease, int]
) -> None:
    release, jid = compiled
    other = f.journalist(session, email="other@example.org", name="Ola Other")
    _, id_a, raw_a = release.message_for(recipient(jid))
    _, id_b, raw_b = release.message_for(
        recipient(other.id, delivery_id=8, email=other.email, name=other.name, verp_token="t2")
    )
    assert id_a != id_b
    a, b = parse(raw_a), parse(raw_b)
    assert "Jane Doe" not in parts(b)[0] and "Ola Other" in parts(b)[0]
    url_b = re.search(r"<(http[^>]+)>", b["List-Unsubscribe"]).group(1)
    assert load_unsubscribe_token(settings, url_b.rsplit("/", 1)[1]) == other.id
    assert a["Subject"] == b["Subject"]


def test_hostile_title_and_name_cannot_inject_headers_or_html(
    session: Session, settings: Settings
) -> None:
    f.organisation(session, settings)
    hostile = f.release(
        session,
        title="Big news\r\nBcc: victim@example.net <script>alert(1)</script>",
        summary='"><img src=x onerror=alert(1)>',
        body_html='<p>ok</p><script>alert("body")</script><a href="javascript:alert(1)">x</a>',
    )
    journalist = f.journalist(session)
    compiled = compile_release(session, hostile.id, settings)
    _, _, raw = compiled.message_for(
        recipient(journalist.id, name='Eve\r\nBcc: all@example.net\x00 <b>"bold"</b>')
    )
    m = parse(raw)
    assert m["Bcc"] is None
    assert len(m.get_all("To") or []) == 1
    assert "\n" not in m["Subject"] and m["Subject"].startswith("Big news Bcc:")
    assert parseaddr(m["To"])[1] == "jane@example.org"
    html, text = parts(m)
    assert "Eve Bcc: all@example.net" in text  # the name, flattened onto one line
    assert "<script" not in html and "javascript:" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>" not in html and "&lt;b&gt;" in html
    assert "onerror=alert(1)>" not in html
    with pytest.raises(ValueError, match="address is not a mailbox we can write"):
        compiled.message_for(recipient(journalist.id, email="x@example.org\r\nBcc: y@example.org"))
    with pytest.raises(ValueError, match="VERP token must be URL-safe"):
        compiled.message_for(recipient(journalist.id, verp_token="a\r\nb"))


def test_embargoed_release_says_so_in_subject_and_at_the_top(
    session: Session, settings: Settings
) -> None:
    f.organisation(session, settings)
    lift = dt.datetime(2026, 7, 1, 8, 30, tzinfo=dt.UTC)  # 09:30 in London (BST)
    release = f.release(session, embargo_until=lift)
    journalist = f.journalist(session)
    _, _, raw = compile_release(session, release.id, settings).message_for(recipient(journalist.id))
    m = parse(raw)
    # Short enough that the title still shows in an inbox line (issue 11).
    assert m["Subject"] == "Embargoed to 1 Jul 09:30 BST: Sea wall to be raised before winter"
    html, text = parts(m)
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[0].startswith("View in browser: ")
    assert lines[1] == "EMBARGOED UNTIL 1 Jul 2026 08:30 UTC (09:30 BST)"
    assert html.index("View in browser") < html.index("EMBARGOED UNTIL")
    banner = html.index("EMBARGOED UNTIL")
    assert banner < html.index('class="release-title')


def test_tracking_adds_pixel_and_click_links_only_when_allowed(
    session: Session, settings: Settings
) -> None:
    org = f.organisation(session, settings, tracking=True)
    release = f.release(session)
    journalist = f.journalist(session)
    compiled = compile_release(session, release.id, settings)

    tracked = parts(parse(compiled.message_for(recipient(journalist.id))[2]))
    html, text = tracked
    assert pixel_url(settings, "AbC123_-xyz") in html
    assert html.index(pixel_url(settings, "AbC123_-xyz")) < html.index('class="release-title')
    click = re.escape(click_url(settings, "AbC123_-xyz", 999)).replace("999", r"\d+")
    assert len(re.findall(click, html)) >= 3  # body links, attachment, read online
    assert 'href="https://council.example/plans' not in html
    assert "https://council.example/plans?a=1&b=2" in text  # text part: original URLs

    declined = parts(
        parse(compiled.message_for(recipient(journalist.id, is_tracking_allowed=False))[2])
    )
    assert "/t/o/" not in declined[0] and "/t/c/" not in declined[0]
    assert 'href="https://council.example/plans?a=1&amp;b=2"' in declined[0]

    org.is_tracking_enabled = False
    session.flush()
    untracked = compile_release(session, release.id, settings)
    html_off, _ = parts(parse(untracked.message_for(recipient(journalist.id))[2]))
    assert "/t/o/" not in html_off and "/t/c/" not in html_off


def test_html_stays_under_the_clipping_limit_and_size_is_reported(
    session: Session, settings: Settings
) -> None:
    f.organisation(session, settings)
    normal = f.release(session)
    long_body = "".join(
        f"<p>Paragraph {i}: the harbour authority published its figures today, and the "
        "council said the work would start in spring.</p>"
        for i in range(120)
    )
    long = f.release(session, body_html=long_body)
    huge = f.release(session, body_html=long_body * 6)
    assert compile_release(session, normal.id, settings).html_size < 40 * 1024
    assert compile_release(session, long.id, settings).html_size < HTML_SIZE_WARNING
    assert compile_release(session, huge.id, settings).html_size > HTML_SIZE_WARNING


def test_dkim_signature_verifies_and_covers_the_unsubscribe_headers(
    session: Session, settings: Settings, tmp_path: object
) -> None:
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_path = Path(str(tmp_path)) / "dkim.pem"
    key_path.write_bytes(pem)
    import base64
    import dataclasses

    signing = dataclasses.replace(
        settings, dkim_selector="mail2026", dkim_private_key_path=str(key_path)
    )
    f.organisation(session, signing)
    # A long title and a long non-ASCII name: folded, RFC 2047-encoded headers get signed too.
    release = f.release(session, title="Sea wall to be raised before winter " * 4)
    journalist = f.journalist(session)
    name = "Zoë Ørsted-Ångström " * 3
    _, _, raw = compile_release(session, release.id, signing).message_for(
        recipient(journalist.id, name=name)
    )
    assert b"\r\n " in raw.split(b"\r\n\r\n", 1)[0]  # some header really is folded

    assert raw.startswith(b"DKIM-Signature:")
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:  # noqa: ARG001 - dkimpy's dnsfunc signature
        assert name == f"mail2026._domainkey.{signing.from_domain}.".encode()
        return record

    assert dkim.verify(raw, dnsfunc=dns)
    signature = parse(raw)["DKIM-Signature"]
    signed = {h.strip().lower() for h in re.search(r"h=([^;]+)", signature).group(1).split(":")}
    assert {"from", "to", "subject", "date", "message-id"} <= signed
    assert {"list-unsubscribe", "list-unsubscribe-post"} <= signed
    tampered = raw.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"X: y")
    assert not dkim.verify(tampered, dnsfunc=dns)


def test_release_template_has_every_block() -> None:
    rendered = EmailRenderer().render_email("release", CONTEXTS["release"]())
    html = rendered.html
    for expected in (
        "Harbour Light Foundation",  # organisation header
        "PRESS RELEASE",  # kind label
        "EMBARGOED UNTIL 25 Nov 2026 09:00 UTC (09:00 GMT)",
        "Sea wall &lt;to be&gt; raised before winter &amp; spring",  # title, escaped
        'alt="The old sea wall at high tide"',
        "Photo: Jo Marsh",
        "The council approved a £4m plan",
        "<strong>1.2 metres</strong>",  # the body's own HTML
        "Press contacts",
        "mailto:sam@harbourlight.example",
        'href="https://news.harbourlight.example/attachments/ab12.pdf"',
        "you follow Climate, Coastal towns",
        "Zoë &lt;O&#39;Brien&gt;",
        "/preferences/tok-p",
        "/unsubscribe/tok-u",
        "14 Quay Street, Portmere",
        "/t/o/verp.gif",
    ):
        assert expected in html, expected
    assert "<mj-" not in html
    for expected in ("EMBARGOED UNTIL", "Sea wall <to be>", "PRESS CONTACTS", "DOWNLOADS"):
        assert expected in rendered.text, expected
    assert rendered.subject.startswith("Embargoed to 25 Nov 09:00 GMT: ")


def test_digest_template_has_every_block() -> None:
    rendered = EmailRenderer().render_email("digest", CONTEXTS["digest"]())
    for expected in (
        "DAILY DIGEST",
        "Sea wall &lt;to be&gt; raised before winter",
        "Annual report 2026",
        "EMBARGOED UNTIL 25 Nov 2026",
        "https://news.harbourlight.example/releases/sea-wall",
        "/unsubscribe/tok-u",
        "14 Quay Street, Portmere",
    ):
        assert expected in rendered.html, expected
    assert "<mj-" not in rendered.html
    assert (
        rendered.subject == "Harbour Light Foundation: 2 new releases for Tuesday 24 November 2026"
    )


def test_html_to_text_keeps_structure_and_links() -> None:
    text = html_to_text(
        '<p>One <a href="https://x.example/a">link</a> here.</p><h2>Head</h2>'
        "<ol><li>first</li><li>second</li></ol><ul><li>dot</li></ul><p>a<br>b</p>"
    )
    assert text == (
        "One link <https://x.example/a> here.\n\nHead\n\n1. first\n2. second\n\n- dot\n\na\nb"
    )


def test_fast_tokens_match_the_audience_tokens_or_step_aside(settings: Settings) -> None:
    from distributor.audience import tokens
    from distributor.delivery.link_tokens import FastToken

    fast = FastToken(settings, tokens.unsubscribe_token, tokens.load_unsubscribe_token)
    assert fast._fast
    token = fast(4242)
    assert tokens.load_unsubscribe_token(settings, token) == 4242
    with pytest.raises(tokens.InvalidToken):
        tokens.load_preferences_token(settings, token)  # purposes stay apart

    def other_format(_settings: Settings, journalist_id: int) -> str:
        return f"v2-{journalist_id}"

    def load_other(_settings: Settings, token: str) -> int:
        return int(token.removeprefix("v2-"))

    fallback = FastToken(settings, other_format, load_other)
    assert not fallback._fast
    assert fallback(7) == "v2-7"


def test_built_urls_are_the_routes_the_app_serves(app: object) -> None:
    from flask import Flask, url_for

    assert isinstance(app, Flask)
    with app.test_request_context():
        assert url_for("audience_public.unsubscribe", token="T") == "/unsubscribe/T"
        assert url_for("audience_public.preferences", token="T") == "/preferences/T"
        assert url_for("newsroom.release", slug="s") == "/releases/s"
        assert url_for("newsroom.photo", name="k-600.jpg") == "/media/photos/k-600.jpg"
        assert (
            url_for("newsroom.attachment", slug="s", attachment_id=1, filename="a.pdf")
            == "/releases/s/attachments/1/a.pdf"
        )
        assert (
            url_for("newsroom.preview_attachment", token="t", attachment_id=1, filename="a.pdf")
            == "/preview/t/attachments/1/a.pdf"
        )
