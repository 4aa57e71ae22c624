"""The pre-send checklist, with a fake DNS resolver (the network guard forbids real DNS)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlalchemy.orm import Session

from distributor.delivery.checklist import (
    CheckStatus,
    DnsPythonResolver,
    DnsUnavailable,
    run_checklist,
)
from distributor.delivery.rendering import compile_release
from distributor.organisation.models import Organisation
from distributor.settings import Settings
from tests.support import delivery_factories as f


class FakeResolver:
    def __init__(self, records: dict[str, list[str]], *, reachable: bool = True) -> None:
        self.records = records
        self.reachable = reachable

    def txt(self, name: str) -> list[str]:
        if not self.reachable:
            raise DnsUnavailable("offline")
        return self.records.get(name, [])


def statuses(
    session: Session,
    settings: Settings,
    *,
    resolver: FakeResolver | None = None,
    org: Organisation | None = None,
    **release_fields: Any,
) -> dict[str, tuple[CheckStatus, str]]:
    org = org or f.organisation(session, settings)
    release = f.release(session, **release_fields)
    checklist = run_checklist(
        release=release,
        compiled=compile_release(session, release.id, settings),
        org=org,
        settings=settings,
        resolver=resolver or FakeResolver({}, reachable=False),
    )
    return {item.label: (item.status, item.detail) for item in checklist.items}


def test_a_good_release_with_good_dns_passes(session: Session, settings: Settings) -> None:
    domain = settings.from_domain
    signing = dataclasses.replace(settings, dkim_selector="s1")
    resolver = FakeResolver(
        {
            domain: ["v=spf1 mx -all"],
            f"s1._domainkey.{domain}": ["v=DKIM1; k=rsa; p=MIIBIjANBg"],
            f"_dmarc.{domain}": ["v=DMARC1; p=quarantine"],
        }
    )
    got = statuses(session, signing, resolver=resolver)
    assert {label: s for label, (s, _) in got.items()} == {
        "Subject length": CheckStatus.OK,
        "HTML size": CheckStatus.OK,
        "Alt text on images": CheckStatus.OK,
        "Links": CheckStatus.OK,
        "Unsubscribe": CheckStatus.OK,
        "Postal address": CheckStatus.OK,
        "Image rights": CheckStatus.OK,
        "SPF": CheckStatus.OK,
        "DKIM": CheckStatus.OK,
        "DMARC": CheckStatus.OK,
    }


def test_unreachable_dns_says_could_not_check(session: Session, settings: Settings) -> None:
    got = statuses(session, settings)
    assert got["SPF"][0] is CheckStatus.UNKNOWN and "Could not check" in got["SPF"][1]
    assert got["DMARC"][0] is CheckStatus.UNKNOWN
    assert got["DKIM"] == (
        CheckStatus.WARN,
        "Signing is off: set DKIM_SELECTOR and DKIM_PRIVATE_KEY_PATH.",
    )


def test_missing_records_are_flagged(session: Session, settings: Settings) -> None:
    got = statuses(session, settings, resolver=FakeResolver({}))
    assert got["SPF"][0] is CheckStatus.BAD and got["DMARC"][0] is CheckStatus.BAD


def test_problems_in_the_release_are_flagged(session: Session, settings: Settings) -> None:
    long_body = "<p>" + "The harbour authority published its figures today. " * 40 + "</p>"
    got = statuses(
        session,
        settings,
        title="A " + "very " * 40 + "long title",
        body_html=long_body * 60 + '<p><a href="/relative/path">here</a></p>',
    )
    assert got["Subject length"][0] is CheckStatus.BAD
    assert got["HTML size"][0] is CheckStatus.WARN and "Gmail clips" in got["HTML size"][1]
    assert got["Links"] == (CheckStatus.BAD, "Not http(s): /relative/path")


def test_missing_alt_text_and_postal_address(session: Session, settings: Settings) -> None:
    org = f.organisation(session, settings)
    org.postal_address = ""
    got = statuses(session, settings, org=org, photo=True)
    assert got["Postal address"][0] is CheckStatus.BAD
    org.postal_address = settings.org_postal_address
    r = f.release(session)
    r.photo_alt = ""
    checklist = run_checklist(
        release=r,
        compiled=compile_release(session, r.id, settings),
        org=org,
        settings=settings,
        resolver=FakeResolver({}),
    )
    alt = next(i for i in checklist.items if i.label == "Alt text on images")
    assert alt.status is CheckStatus.WARN and "lead photo" in alt.detail


def test_real_resolver_reports_unreachable_dns_instead_of_failing() -> None:
    # A nameserver on a loopback port where nothing listens: the lookup times out.
    from tests.support.services import free_port

    resolver = DnsPythonResolver(timeout=0.3, nameservers=["127.0.0.1"], port=free_port())
    with pytest.raises(DnsUnavailable):
        resolver.txt("example.org")
    # The next lookups answer at once instead of waiting out the timeout again.
    with pytest.raises(DnsUnavailable, match="a moment ago"):
        resolver.txt("_dmarc.example.org")
