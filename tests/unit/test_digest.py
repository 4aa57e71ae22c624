"""Daily digests: one per journalist per day, from the digest hour, never twice."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import smtplib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.audience.models import DeliveryMode, Journalist, Suppression, SuppressionReason
from distributor.audience.tokens import load_unsubscribe_token
from distributor.db import Database
from distributor.delivery.digest import sweep_digests
from distributor.delivery.models import Delivery, DeliveryStatus, DigestMail, DigestStatus
from distributor.mail.transport import InMemoryTransport, SentMessage
from distributor.releases.models import Release
from distributor.settings import Settings
from tests.support import delivery_factories as f

# 09:00 in London on 24 November (GMT): after the default digest hour (08:00).
MORNING = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)


# What sweep_digests opens for each transaction.
UnitOfWork = Callable[[], AbstractContextManager[Session]]


@pytest.fixture()
def unit_of_work(db: Database) -> UnitOfWork:
    @contextmanager
    def work() -> Iterator[Session]:
        s = db.session()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    return work


def waiting(session: Session, journalist: Journalist, *titles: str) -> list[Release]:
    releases = []
    for title in titles:
        r = f.release(session, title=title)
        f.send_with_delivery(session, r, journalist, status=DeliveryStatus.DIGEST)
        releases.append(r)
    session.commit()
    return releases


@pytest.fixture()
def reader(session: Session, settings: Settings) -> Journalist:
    f.organisation(session, settings)
    j = f.journalist(session, name="Dee Gest")
    j.delivery_mode = DeliveryMode.DAILY_DIGEST
    session.commit()
    return j


def parse(sent: SentMessage) -> email.message.EmailMessage:
    message = email.message_from_bytes(sent.message, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_one_digest_per_day_with_every_waiting_release(
    session: Session, settings: Settings, reader: Journalist, unit_of_work: UnitOfWork
) -> None:
    waiting(session, reader, "Harbour reopens", "New ferry timetable")
    transport = InMemoryTransport()
    run = lambda now: sweep_digests(  # noqa: E731
        unit_of_work,
        now=now,
        settings=settings,
        transport=transport,
    )

    assert run(MORNING.replace(hour=7)) == 0  # before the digest hour
    assert run(MORNING) == 1
    assert run(MORNING + dt.timedelta(minutes=15)) == 0  # the sweep runs again: nothing
    assert run(MORNING + dt.timedelta(hours=10)) == 0

    (sent,) = transport.sent
    assert sent.recipients == [reader.email]
    assert sent.envelope_from.startswith("bounces+")
    m = parse(sent)
    assert m["Subject"] == f"{settings.org_name}: 2 new releases for Tuesday 24 November 2026"
    assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = m["List-Unsubscribe"].split("<", 1)[1].split(">", 1)[0]
    assert load_unsubscribe_token(settings, url.rsplit("/", 1)[1]) == reader.id
    assert m["Precedence"] == "bulk" and m["Message-ID"].endswith(f"@{settings.from_domain}>")
    text = m.get_body(("plain",)).get_content()
    assert "Harbour reopens" in text and "New ferry timetable" in text

    session.expire_all()
    rows = session.scalars(select(Delivery).where(Delivery.journalist_id == reader.id)).all()
    assert {d.status for d in rows} == {DeliveryStatus.SENT}
    assert {d.message_id for d in rows} == {m["Message-ID"]}
    (digest,) = session.scalars(select(DigestMail)).all()
    assert digest.status is DigestStatus.SENT and digest.digest_date == dt.date(2026, 11, 24)

    # The next day only the new release goes out.
    waiting(session, reader, "Lifeboat appeal")
    assert run(MORNING + dt.timedelta(days=1)) == 1
    second = parse(transport.sent[1]).get_body(("plain",)).get_content()
    assert "Lifeboat appeal" in second and "Harbour reopens" not in second


def test_suppressed_journalist_gets_nothing(
    session: Session, settings: Settings, reader: Journalist, unit_of_work: UnitOfWork
) -> None:
    waiting(session, reader, "Harbour reopens")
    import hashlib

    session.add(
        Suppression(
            address_hash=hashlib.sha256(reader.email.lower().encode()).hexdigest(),
            address=reader.email,
            reason=SuppressionReason.UNSUBSCRIBED_ALL,
        )
    )
    session.commit()
    transport = InMemoryTransport()
    assert sweep_digests(unit_of_work, now=MORNING, settings=settings, transport=transport) == 0
    assert transport.sent == []
    session.expire_all()
    (row,) = session.scalars(select(Delivery).where(Delivery.journalist_id == reader.id)).all()
    assert row.status is DeliveryStatus.CANCELLED


class FailingTransport:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    def send(self, envelope_from: str, recipients: list[str], message: bytes) -> None:
        self.calls += 1
        raise self.error


def test_unreachable_server_is_retried_by_the_next_sweep(
    session: Session, settings: Settings, reader: Journalist, unit_of_work: UnitOfWork
) -> None:
    waiting(session, reader, "Harbour reopens")
    down = FailingTransport(ConnectionRefusedError("refused"))
    assert sweep_digests(unit_of_work, now=MORNING, settings=settings, transport=down) == 0
    assert down.calls == 1
    session.expire_all()
    assert session.scalars(select(DigestMail)).all() == []
    up = InMemoryTransport()
    later = MORNING + dt.timedelta(minutes=15)
    assert sweep_digests(unit_of_work, now=later, settings=settings, transport=up) == 1
    assert len(up.sent) == 1


def test_permanent_refusal_fails_and_unknown_outcome_is_not_resent(
    session: Session, settings: Settings, reader: Journalist, unit_of_work: UnitOfWork
) -> None:
    waiting(session, reader, "Harbour reopens")
    refused = FailingTransport(
        smtplib.SMTPRecipientsRefused({reader.email: (550, b"5.1.1 no such user")})
    )
    sweep_digests(unit_of_work, now=MORNING, settings=settings, transport=refused)
    session.expire_all()
    (row,) = session.scalars(select(Delivery).where(Delivery.journalist_id == reader.id)).all()
    assert row.status is DeliveryStatus.FAILED and row.smtp_code == 550

    other = f.journalist(session, name="Un Known")
    other.delivery_mode = DeliveryMode.DAILY_DIGEST
    waiting(session, other, "Ferry news")
    dropped = FailingTransport(smtplib.SMTPServerDisconnected("lost after DATA"))
    sweep_digests(unit_of_work, now=MORNING, settings=settings, transport=dropped)
    again = InMemoryTransport()
    later = MORNING + dt.timedelta(days=1)
    assert sweep_digests(unit_of_work, now=later, settings=settings, transport=again) == 0
    assert again.sent == []
    session.expire_all()
    digest = session.scalar(select(DigestMail).where(DigestMail.journalist_id == other.id))
    assert digest is not None and digest.status is DigestStatus.SENDING


@pytest.mark.parametrize("is_offered", [True, False], ids=["smtputf8", "no-smtputf8"])
def test_a_digest_to_a_utf8_mailbox_takes_the_smtputf8_road(
    session: Session,
    settings: Settings,
    reader: Journalist,
    unit_of_work: UnitOfWork,
    is_offered: bool,
) -> None:
    """RFC 6531/6532 through a real SMTP server on loopback: sent with SMTPUTF8 and a raw
    UTF-8 To header when the relay offers it; failed with the reason when it does not."""
    from distributor.mail.transport import SMTPConfig, SMTPTransport
    from tests.support.smtp import SMTPSink

    reader.email = reader.email_normalized = "josé@xn--fsqu00a.xn--4rr70v"
    waiting(session, reader, "Harbour reopens")
    with SMTPSink(enable_SMTPUTF8=is_offered) as relay:
        transport = SMTPTransport(SMTPConfig.from_url(relay.url))
        sent = sweep_digests(unit_of_work, now=MORNING, settings=settings, transport=transport)
        received = relay.received
    session.expire_all()
    (row,) = session.scalars(select(Delivery).where(Delivery.journalist_id == reader.id)).all()
    if is_offered:
        (got,) = received
        assert sent == 1 and row.status is DeliveryStatus.SENT
        assert got.rcpt_tos == [reader.email]
        assert {"SMTPUTF8", "BODY=8BITMIME"} <= set(got.mail_options)
        assert b"<" + reader.email.encode("utf-8") + b">" in got.raw.split(b"\r\n\r\n")[0]
    else:
        assert sent == 0 and received == []
        assert (row.status, row.smtp_code) == (DeliveryStatus.FAILED, None)
        assert f"our relay 127.0.0.1:{relay.port} does not offer SMTPUTF8" in row.smtp_response
