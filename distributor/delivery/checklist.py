"""The pre-send checklist: what the software can verify before a release goes out.

Mailbox providers' bulk-sender rules (Gmail and Yahoo since 2024, Outlook.com since 2025) ask
for SPF, DKIM and DMARC on the From domain, one-click unsubscribe and a postal address; Gmail
clips HTML over ~102 KB. The DNS lookups sit behind ``TxtResolver`` so tests use a fake; when
DNS cannot be reached the item says "could not check" instead of failing the page.
"""

from __future__ import annotations

import email
import email.policy
import enum
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Protocol

from distributor.delivery.rendering import HTML_SIZE_WARNING, CompiledRelease, staff_recipient
from distributor.organisation.models import Organisation
from distributor.releases.models import Release
from distributor.settings import Settings

if TYPE_CHECKING:
    from distributor.media.rights import RightsProblem

SUBJECT_COMFORTABLE = 78  # beyond this most clients cut the subject in the inbox list
SUBJECT_LIMIT = 150


class CheckStatus(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    BAD = "bad"
    UNKNOWN = "unknown"  # could not check (DNS unreachable)


@dataclass(frozen=True)
class CheckItem:
    label: str
    status: CheckStatus
    detail: str


@dataclass(frozen=True)
class Checklist:
    items: list[CheckItem]

    @property
    def problems(self) -> list[CheckItem]:
        return [i for i in self.items if i.status in (CheckStatus.WARN, CheckStatus.BAD)]


class DnsUnavailable(Exception):
    """DNS could not be asked (no network, timeout, no nameserver)."""


class TxtResolver(Protocol):
    def txt(self, name: str) -> list[str]:
        """The TXT strings at ``name`` ([] when there are none); raise ``DnsUnavailable``."""


class DnsPythonResolver:
    """TXT lookups through dnspython with a short overall timeout, cached for five minutes."""

    CACHE_SECONDS = 300
    OFFLINE_SECONDS = 60

    def __init__(
        self, timeout: float, *, nameservers: list[str] | None = None, port: int = 53
    ) -> None:
        self.timeout = timeout
        self.nameservers = nameservers
        self.port = port
        self._cache: dict[str, tuple[float, list[str]]] = {}
        self._offline_until = 0.0

    def txt(self, name: str) -> list[str]:
        cached = self._cache.get(name)
        if cached is not None and time.monotonic() - cached[0] < self.CACHE_SECONDS:
            return cached[1]
        if time.monotonic() < self._offline_until:
            raise DnsUnavailable("DNS was unreachable a moment ago")
        import dns.exception
        import dns.resolver

        try:
            resolver = dns.resolver.Resolver(configure=self.nameservers is None)
            if self.nameservers is not None:
                resolver.nameservers = self.nameservers
                resolver.port = self.port
            resolver.lifetime = self.timeout
            answer = resolver.resolve(name, "TXT")
            found = [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            found = []
        except (dns.exception.DNSException, OSError, RuntimeError) as exc:
            # Offline machines should not wait out the timeout on every page load.
            self._offline_until = time.monotonic() + self.OFFLINE_SECONDS
            raise DnsUnavailable(str(exc) or type(exc).__name__) from exc
        self._cache[name] = (time.monotonic(), found)
        return found


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.missing_alt: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img" and a.get("width") != "1" and not (a.get("alt") or "").strip():
            self.missing_alt.append(a.get("src") or "")
        if tag == "a" and a.get("href") is not None:
            self.links.append(a["href"] or "")


def _sample_message(compiled: CompiledRelease) -> email.message.EmailMessage:
    sample = staff_recipient(email="checklist@example.org", name="Checklist", label="checklist")
    message = email.message_from_bytes(compiled.message_for(sample)[2], policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def run_checklist(
    *,
    release: Release,
    compiled: CompiledRelease,
    org: Organisation,
    settings: Settings,
    resolver: TxtResolver,
    rights: Sequence[RightsProblem] = (),
) -> Checklist:
    """Check the compiled release mail, its library assets' rights and the From domain's DNS."""
    items: list[CheckItem] = []
    subject = compiled.subject
    if len(subject) <= SUBJECT_COMFORTABLE:
        items.append(CheckItem("Subject length", CheckStatus.OK, f"{len(subject)} characters."))
    else:
        status = CheckStatus.WARN if len(subject) <= SUBJECT_LIMIT else CheckStatus.BAD
        items.append(
            CheckItem(
                "Subject length",
                status,
                f"{len(subject)} characters; inboxes show about {SUBJECT_COMFORTABLE}, "
                "phones fewer. Put the news in the first words.",
            )
        )
    kb = compiled.html_size / 1024
    if compiled.html_size < HTML_SIZE_WARNING:
        items.append(CheckItem("HTML size", CheckStatus.OK, f"{kb:.0f} KB (limit 90 KB)."))
    else:
        items.append(
            CheckItem(
                "HTML size",
                CheckStatus.WARN,
                f"{kb:.0f} KB: Gmail clips mail over ~102 KB and hides the rest, the "
                "unsubscribe link included. Shorten the body or move detail to the newsroom.",
            )
        )

    message = _sample_message(compiled)
    html_part = message.get_body(("html",))
    text_part = message.get_body(("plain",))
    html = html_part.get_content() if html_part else ""
    text = text_part.get_content() if text_part else ""
    parser = _Images()
    parser.feed(html)
    if release.photo_key and not release.photo_alt.strip():
        parser.missing_alt.append("lead photo")
    if parser.missing_alt:
        items.append(
            CheckItem(
                "Alt text on images",
                CheckStatus.WARN,
                "Missing on: " + ", ".join(parser.missing_alt[:5]) + ". Screen readers and "
                "mail with images off show nothing.",
            )
        )
    else:
        items.append(CheckItem("Alt text on images", CheckStatus.OK, "Every image has alt text."))

    odd = sorted(
        {h for h in parser.links if not re.match(r"(https?://|mailto:|tel:)", h, re.IGNORECASE)}
    )
    if odd:
        items.append(
            CheckItem(
                "Links", CheckStatus.BAD, "Not http(s): " + ", ".join(o[:60] for o in odd[:5])
            )
        )
    else:
        items.append(CheckItem("Links", CheckStatus.OK, f"{len(parser.links)} links, all http(s)."))

    has_unsubscribe = (
        bool(message["List-Unsubscribe"])
        and message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        and "/unsubscribe/" in html
        and "/unsubscribe/" in text
    )
    items.append(
        CheckItem(
            "Unsubscribe",
            CheckStatus.OK if has_unsubscribe else CheckStatus.BAD,
            "One-click List-Unsubscribe header and a link in both parts."
            if has_unsubscribe
            else "The unsubscribe header or link is missing.",
        )
    )
    address = " ".join(org.postal_address.split())
    has_address = bool(address) and address in " ".join(text.split())
    items.append(
        CheckItem(
            "Postal address",
            CheckStatus.OK if has_address else CheckStatus.BAD,
            address if has_address else "Set the organisation's postal address (CAN-SPAM).",
        )
    )
    items.append(rights_item(rights))
    items.extend(dns_checks(settings, resolver))
    return Checklist(items)


def rights_item(problems: Sequence[RightsProblem]) -> CheckItem:
    """Expired rights on a carried asset are red; rights ending soon are a warning."""
    if not problems:
        return CheckItem(
            "Image rights", CheckStatus.OK, "Every library asset's rights are in force."
        )
    blocking = [p for p in problems if p.is_blocking]
    return CheckItem(
        "Image rights",
        CheckStatus.BAD if blocking else CheckStatus.WARN,
        " ".join(p.detail for p in (blocking or problems)[:5]),
    )


def dns_checks(settings: Settings, resolver: TxtResolver) -> list[CheckItem]:
    """SPF, DKIM and DMARC records of the From domain."""
    domain = settings.from_domain
    checks: list[tuple[str, str, str, str]] = [
        ("SPF", domain, "v=spf1", f"No SPF record at {domain}."),
        ("DMARC", f"_dmarc.{domain}", "v=dmarc1", f"No DMARC record at _dmarc.{domain}."),
    ]
    items: list[CheckItem] = []
    if settings.dkim_selector:
        dkim_domain = settings.dkim_domain or domain
        name = f"{settings.dkim_selector}._domainkey.{dkim_domain}"
        checks.insert(1, ("DKIM", name, "p=", f"No DKIM key at {name}."))
    reachable = True
    for label, name, marker, missing in checks:
        try:
            if not reachable:  # one timeout is enough; do not wait for each record
                raise DnsUnavailable("skipped")
            records = resolver.txt(name)
        except DnsUnavailable:
            reachable = False
            items.append(
                CheckItem(label, CheckStatus.UNKNOWN, f"Could not check {name}: DNS unreachable.")
            )
            continue
        found = [r for r in records if marker in r.lower().replace(" ", "")]
        if found:
            items.append(CheckItem(label, CheckStatus.OK, found[0][:120]))
        else:
            items.append(CheckItem(label, CheckStatus.BAD, missing))
    if not settings.dkim_selector:
        items.insert(
            1,
            CheckItem(
                "DKIM",
                CheckStatus.WARN,
                "Signing is off: set DKIM_SELECTOR and DKIM_PRIVATE_KEY_PATH.",
            ),
        )
    return items
