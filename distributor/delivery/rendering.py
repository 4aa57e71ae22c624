"""Release mail: compiled once per release, filled in per recipient in microseconds.

``compile_release`` renders the ``release`` template with Jinja, putting an inert marker where
each per-recipient value goes (name, beats, preference and unsubscribe URLs, pixel, tracked
links), compiles the MJML once, and splits both parts into quoted-printable chunks around the
markers (see ``distributor.delivery.mime``). ``CompiledRelease.message_for`` then only joins bytes:
no MJML, no Jinja and no ``EmailMessage`` per recipient.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage
from functools import lru_cache
from html import escape
from typing import TYPE_CHECKING

import nh3
from sqlalchemy.orm import Session

from distributor.audience import tokens
from distributor.db import utcnow
from distributor.delivery.link_tokens import FastToken
from distributor.delivery.mime import (
    SOFT_BREAK,
    HeaderSet,
    MessageTemplate,
    SlotMarkers,
    html_to_text,
    html_value,
    text_value,
)
from distributor.delivery.release_context import LibraryItem, release_context
from distributor.errors import NotFound
from distributor.logs import get_logger
from distributor.mail import verp
from distributor.mail.dkim import DkimSigner, load_signer
from distributor.mail.rendering import EmailRenderer, compile_mjml
from distributor.media import downloads as media_downloads
from distributor.media import services as media_services
from distributor.organisation.services import get_organisation
from distributor.releases.models import Release
from distributor.settings import Settings
from distributor.signals import LinkTracking, RoomLinks, compiling_release, tracking_links

if TYPE_CHECKING:
    from distributor.delivery.ledger import ClaimedRow

log = get_logger("distributor.delivery.rendering")

MEDIA_LIST_REASON = "our press team added you to one of its media lists"
HTML_SIZE_WARNING = 90 * 1024  # Gmail clips an HTML part over ~102 KB
_VERP_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HREF = re.compile(r'href="(https?://[^"]+)"')
_REASONS_KEPT = 256  # distinct beat lists whose encoded reason a compiled release keeps
_TOKEN_PROBE = "TOKENxPROBExZ9"  # noqa: S105 - stands in for the VERP token when building URL templates


@dataclass(frozen=True)
class Recipient:
    delivery_id: int
    journalist_id: int | None
    email: str
    name: str
    verp_token: str
    matched_beats: str
    is_tracking_allowed: bool


def recipient_of(row: ClaimedRow) -> Recipient:
    """The recipient a claimed ledger row names."""
    return Recipient(
        row.id,
        row.journalist_id,
        row.email,
        row.name,
        row.verp_token,
        row.matched_beats,
        row.is_tracking_allowed,
    )


# One recipient's release mail, ready for the SMTP envelope: (the VERP bounce address for MAIL
# FROM, the Message-ID, RFC 5322 bytes with CRLF, not dot-stuffed). A plain tuple: a NamedTuple
# costs about a microsecond more per message.
ReleaseMessage = tuple[str, str, bytes]


@lru_cache(maxsize=1)
def _renderer() -> EmailRenderer:
    return EmailRenderer()


# -- tracking ---------------------------------------------------------------------------------


class _Tracking:
    """Pixel and click URL templates built once from the tracking package's answer."""

    def __init__(self, links: LinkTracking):
        self.link_ids = links.link_ids
        self.pixel = _split_on_probe(links.pixel_url(_TOKEN_PROBE))
        self.clicks = {
            url: _split_on_probe(links.click_url(_TOKEN_PROBE, link_id))
            for url, link_id in self.link_ids.items()
        }


def _split_on_probe(url: str) -> tuple[str, str]:
    before, found, after = url.partition(_TOKEN_PROBE)
    if not found or _TOKEN_PROBE in after:
        raise ValueError("tracking URL does not carry the token verbatim")
    return before, after


def _load_tracking(
    session: Session, release_id: int, settings: Settings, urls: list[str]
) -> _Tracking | None:
    for _receiver, answer in tracking_links.send(
        release_id, session=session, settings=settings, urls=urls
    ):
        if isinstance(answer, LinkTracking):
            return _Tracking(answer)
    log.warning("tracking module missing; sending without pixel and tracked links")
    return None


# -- compiled release ------------------------------------------------------------------------


class CompiledRelease:
    """A release compiled once; ``message_for`` fills in one recipient."""

    # Every line of a rendered message is a header, a boundary or quoted-printable made by
    # ``mime.dot_safe``: none starts with a dot, so SMTP needs no dot-stuffing pass over it.
    is_dot_safe = True

    def __init__(
        self,
        *,
        release_id: int,
        subject: str,
        template: MessageTemplate,
        settings: Settings,
        tracking: _Tracking | None,
        tracked_urls: list[str],
        signer: DkimSigner | None,
        room: RoomLinks | None = None,
    ) -> None:
        self.release_id = release_id
        self.room = room
        self.subject = subject
        self.template = template
        self.signer = signer
        self._from_domain = settings.from_domain
        self._bounce_domain = settings.bounce_domain
        self._prefs_prefix = f"{settings.public_base_url}/preferences/"
        self._unsub_prefix = f"{settings.public_base_url}/unsubscribe/"
        # A token URL in the body is its prefix, encoded once here, and the token on a line of
        # its own after a soft break (quoted-printable joins them again, RFC 2045 6.7 rule 5):
        # re-encoding the whole URL for every recipient costs about ten times as much.
        self._prefs_qp = text_value(self._prefs_prefix)
        self._unsub_qp = text_value(self._unsub_prefix)
        self._prefs_token = FastToken(
            settings, tokens.preferences_token, tokens.load_preferences_token
        )
        self._unsub_token = FastToken(
            settings, tokens.unsubscribe_token, tokens.load_unsubscribe_token
        )
        self._tracking = tracking
        self._settings = settings
        self._reasons: dict[str, tuple[bytes, bytes]] = {}
        # What is the same for every recipient is encoded here, once.
        self._plain_links = {
            f"link{i}": (html_value(escape(u)), text_value(u)) for i, u in enumerate(tracked_urls)
        }
        # Tracking URLs are static text around the VERP token. Each static piece is encoded
        # once on its own quoted-printable line(s); the token (letters, digits, - and _, at
        # most 64) goes between them on a line of its own, so a soft break is all it needs.
        self._pixel: tuple[bytes, bytes] | None = None
        self._clicks: list[tuple[str, bytes, bytes, bytes]] = []
        if tracking is not None:
            before, after = tracking.pixel
            self._pixel = (
                html_value(f'<img src="{escape(before)}'),
                html_value(
                    f'{escape(after)}" width="1" height="1" alt="" '
                    'style="display:block;width:1px;height:1px;border:0;" />'
                ),
            )
            for i, url in enumerate(tracked_urls):
                if url in tracking.clicks:
                    b, a = tracking.clicks[url]
                    # The text part links to the original URL: no click tracking in plain text.
                    self._clicks.append(
                        (f"link{i}", html_value(escape(b)), html_value(escape(a)), text_value(url))
                    )
        self.html_size = _html_part_size(self.message_for(_SAMPLE)[2])

    def _verp(self, purpose: str, delivery_id: int) -> str:
        return verp.make(self._settings, purpose, verp.DELIVERY, delivery_id)

    def _reason(self, matched_beats: str) -> tuple[bytes, bytes]:
        """Why the recipient gets this mail, encoded for both parts. A function of the beats
        alone (a send has few distinct ones), so it is encoded once per distinct value."""
        encoded = self._reasons.get(matched_beats)
        if encoded is None:
            beats = " ".join(matched_beats.split())
            reason = f"you follow {beats}" if beats else MEDIA_LIST_REASON
            encoded = (html_value(escape(reason)), text_value(reason))
            if len(self._reasons) >= _REASONS_KEPT:
                self._reasons.clear()
            self._reasons[matched_beats] = encoded
        return encoded

    def _slot_values(self, r: Recipient, unsub_token: str) -> dict[str, tuple[bytes, bytes]]:
        name = " ".join(r.name.split()) or r.email  # no line breaks from a name, anywhere
        # Token URLs are URL-safe ASCII: the same bytes serve both parts.
        prefs = self._prefs_qp + text_value(self._prefs_token(r.journalist_id or 0))
        unsub_value = self._unsub_qp + text_value(unsub_token)
        values = {
            "name": (html_value(escape(name)), text_value(name)),
            "email": (html_value(escape(r.email)), text_value(r.email)),
            "reason": self._reason(r.matched_beats),
            "preferences_url": (prefs, prefs),
            "unsubscribe_url": (unsub_value, unsub_value),
        }
        values.update(self._plain_links)
        if self.room is not None:
            # Personal and not tracked: the room logs its own views.
            room = self.room.url_for(r.journalist_id or 0)
            values["room_url"] = (html_value(escape(room)), text_value(room))
        if self._pixel is not None and r.is_tracking_allowed:
            # Checked by message_for(): letters, digits, - and _, so it needs no encoding.
            token = r.verp_token.encode("ascii") + SOFT_BREAK
            values["pixel"] = (self._pixel[0] + token + self._pixel[1], b"")
            for key, before, after, text in self._clicks:
                values[key] = (before + token + after, text)
        else:
            values["pixel"] = (b"", b"")
        return values

    def message_for(self, r: Recipient) -> ReleaseMessage:
        """One recipient's message: slot values joined into the compiled bytes."""
        token = r.verp_token
        if not _VERP_TOKEN.fullmatch(token):
            raise ValueError("VERP token must be URL-safe letters, digits, - and _")
        # The header tokens are single-purpose MACs of the delivery id, never the tracking
        # token the body shows (see distributor/mail/verp.py): a forwarded copy cannot be
        # turned into an unsubscribe or a forged bounce.
        ident = r.delivery_id
        message_id = (
            f"<{self.release_id}.{ident}.{self._verp(verp.MESSAGE_ID, ident)}@{self._from_domain}>"
        )
        mailto = (
            f"mailto:unsubscribe+{self._verp(verp.UNSUBSCRIBE, ident)}"
            f"@{self._bounce_domain}?subject=unsubscribe"
        )
        # No journalist (a staff test send): the tokens name nobody and their pages say so.
        unsub_token = self._unsub_token(r.journalist_id or 0)
        unsub = self._unsub_prefix + unsub_token
        values = self._slot_values(r, unsub_token)
        headers = HeaderSet(
            message_id=message_id,
            to_name=r.name,
            to_address=r.email,
            # Folded between the two URIs (RFC 5322 2.2.3): each line stays short.
            list_unsubscribe=f"<{unsub}>,\r\n <{mailto}>",
        )
        message = self.template.fill(headers, values)
        if self.signer is not None:
            message = self.signer.sign(message)
        return (
            f"bounces+{self._verp(verp.BOUNCE, ident)}@{self._bounce_domain}",
            message_id,
            message,
        )


def _html_part_size(message: bytes) -> int:
    """Bytes of the decoded HTML part, what Gmail measures before clipping."""
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    html = parsed.get_body(("html",))
    return len(html.get_content().encode("utf-8")) if html is not None else 0


def staff_recipient(*, email: str, name: str, label: str) -> Recipient:
    """Not a journalist: previews, test sends and the checklist (no tracking, no real tokens)."""
    return Recipient(
        delivery_id=0,
        journalist_id=None,
        email=email,
        name=name,
        verp_token=label,
        matched_beats="",
        is_tracking_allowed=False,
    )


_SAMPLE = Recipient(
    delivery_id=0,
    journalist_id=1,
    email="sample.journalist@example.org",
    name="Sample Journalist",
    verp_token="x" * 22,
    matched_beats="Climate, Energy",
    is_tracking_allowed=True,
)


def sanitise_body(body_html: str) -> str:
    # The releases service already cleans body_html with nh3; cleaning again here keeps the
    # mail safe whatever path filled the column.
    return nh3.clean(body_html, link_rel=None)


def _room_links(session: Session, release: Release, settings: Settings) -> RoomLinks | None:
    """The embargo room's answer, if a receiver gives one (an embargoed release)."""
    for _receiver, answer in compiling_release.send(release, session=session, settings=settings):
        if isinstance(answer, RoomLinks):
            return answer
    return None


def _library_items(session: Session, release: Release) -> list[LibraryItem]:
    """The release's media library assets whose rights are in force (see distributor/media)."""
    return [
        LibraryItem(
            key=m.asset.key,
            title=m.asset.title,
            caption=m.asset.caption,
            alt=m.asset.alt_text,
            credit=media_downloads.credit_line(m.asset),
            is_image=m.asset.is_image,
            is_lead=m.is_lead,
        )
        for m in media_services.visible_release_media(session, release.id, utcnow())
    ]


def compile_release(session: Session, release_id: int, settings: Settings) -> CompiledRelease:
    """Compile the release mail once: MJML, the text part and every static header."""
    release = session.get(Release, release_id)
    if release is None:
        raise NotFound("Release not found")
    room = _room_links(session, release, settings)
    org = get_organisation(session, settings)
    markers = SlotMarkers()
    body_html = sanitise_body(release.body_html)
    tracked_urls: list[str] = []

    def link(url: str) -> str:
        if url not in tracked_urls:
            tracked_urls.append(url)
        return markers.slot(f"link{tracked_urls.index(url)}")

    from html import unescape

    def rewrite(match: re.Match[str]) -> str:
        return f'href="{link(unescape(match.group(1)))}"'

    body_with_slots = _HREF.sub(rewrite, body_html)
    recipient = {
        "name": markers.slot("name"),
        "email": markers.slot("email"),
        "reason": markers.slot("reason"),
        "preferences_url": markers.slot("preferences_url"),
        "unsubscribe_url": markers.slot("unsubscribe_url"),
    }
    context = release_context(
        release,
        org,
        settings,
        recipient=recipient,
        link=link,
        pixel=markers.slot("pixel"),
        body_html=body_with_slots,
        room=None
        if room is None
        else {
            "url": markers.slot("room_url"),
            "requires_terms": room.requires_terms,
            "terms_summary": room.terms_summary,
        },
        library=_library_items(session, release),
    )
    renderer = _renderer()
    subject = renderer.render_subject("release", context)
    html = compile_mjml(renderer.render_mjml("release", context))
    text_context = dict(context)
    text_context["release"] = dict(context["release"])
    text_context["release"]["body_text"] = html_to_text(body_html)
    text = renderer.render_text("release", text_context)
    tracking = (
        _load_tracking(session, release_id, settings, tracked_urls)
        if org.is_tracking_enabled
        else None
    )
    template = MessageTemplate.compile(
        markers=markers,
        subject=subject,
        html=html,
        text=text,
        from_name=org.name,
        from_address=settings.mail_from,
        reply_to=org.press_email,
        list_id=f"{org.name} releases <releases.{settings.from_domain}>",
        feedback_id=f"{release.id}:{release.kind.slug if release.kind else 'release'}:release:"
        f"{settings.from_domain}",
    )
    return CompiledRelease(
        release_id=release.id,
        subject=subject,
        template=template,
        settings=settings,
        tracking=tracking,
        tracked_urls=tracked_urls,
        signer=load_signer(settings),
        room=room,
    )
