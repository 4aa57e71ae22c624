"""A journalist is never deleted while a send's recipients are frozen.

``deliveries.journalist_id`` has no foreign key (migration 0029). Its referential check used
to make an erasure and a freeze of the same journalist wait for each other; an advisory lock
held by both now does (``distributor.audience.deletion``). Without it an erasure misses the
rows of a freeze still running (they keep the address it was asked to forget), and a freeze
running during an erasure writes a row for the journalist being erased.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.audience.models import Journalist
from distributor.audience.preferences import erase_journalist
from distributor.db import Database, utcnow
from distributor.delivery import handlers
from distributor.delivery.models import Delivery, Send, SendStatus
from distributor.delivery.recipients import freeze_recipients
from tests.support.delivery_seed import bulk_release
from tests.support.services import need

pytestmark = pytest.mark.integration


def _people(db: Database, n: int) -> tuple[int, list[int]]:
    with db.session() as session, session.begin():
        release_id, emails = bulk_release(session, n, domains=1)
        ids = list(session.scalars(select(Journalist.id).where(Journalist.email.in_(emails))))
    return release_id, ids


def _waits_until_commit(holder: Session, work: Callable[[], None], message: str) -> None:
    """``work``, started on another connection, is still waiting half a second later, and
    finishes without error once ``holder`` commits."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive(), f"{message}: {errors}"
    holder.commit()
    thread.join(15)
    assert not thread.is_alive() and not errors


def _rows_of(db: Database, release_id: int) -> list[Delivery]:
    with db.session() as session:
        return list(session.scalars(select(Delivery).where(Delivery.release_id == release_id)))


@pytest.fixture()
def postgres(live_db: Database) -> Database:
    need(live_db.engine.dialect.name == "postgresql", "SQLite has one writer at a time")
    handlers.connect()  # the delivery package's erasure receiver
    return live_db


def test_an_erasure_waits_for_a_freeze_and_then_anonymises_its_rows(postgres: Database) -> None:
    release_id, ids = _people(postgres, 3)
    erased = ids[0]
    with postgres.session() as freezing:
        freezing.begin()
        send = Send(release_id=release_id, status=SendStatus.RUNNING, started_at=utcnow())
        freezing.add(send)
        freezing.flush()
        assert freeze_recipients(freezing, send_id=send.id, release_id=release_id, now=utcnow())

        def erase() -> None:
            with postgres.session() as session, session.begin():
                assert erase_journalist(session, erased)

        _waits_until_commit(freezing, erase, "the erasure did not wait for the freeze")
    rows = _rows_of(postgres, release_id)
    assert len(rows) == 3
    gone = [r for r in rows if r.journalist_id is None]
    assert len(gone) == 1 and gone[0].email is None  # the frozen row was anonymised too


def test_a_freeze_waits_for_an_erasure_and_then_leaves_the_journalist_out(
    postgres: Database,
) -> None:
    release_id, ids = _people(postgres, 3)
    erased = ids[1]
    with postgres.session() as erasing:
        erasing.begin()
        assert erase_journalist(erasing, erased)

        def freeze() -> None:
            with postgres.session() as session, session.begin():
                send = Send(release_id=release_id, status=SendStatus.RUNNING, started_at=utcnow())
                session.add(send)
                session.flush()
                freeze_recipients(session, send_id=send.id, release_id=release_id, now=utcnow())

        _waits_until_commit(erasing, freeze, "the freeze did not wait for the erasure")
    rows = _rows_of(postgres, release_id)
    assert {r.journalist_id for r in rows} == set(ids) - {erased} and len(rows) == len(ids) - 1
