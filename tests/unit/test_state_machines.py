"""The machines are the law: every status write of a delivery, a send and a release is a move
its machine allows, and a send and its release never drift apart."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

import distributor
from distributor.delivery import ledger, progress, services
from distributor.delivery.ledger import DELIVERY_MACHINE, SEND_MACHINE
from distributor.delivery.models import DeliveryStatus, Send, SendStatus
from distributor.errors import IllegalTransition
from distributor.releases.models import ReleaseStatus
from distributor.statemachine import StateMachine
from tests.support import delivery_factories as f

PACKAGE = Path(distributor.__file__).parent


def test_guards_name_only_the_sources_the_machine_allows() -> None:
    assert (
        DELIVERY_MACHINE.sql_guard(DeliveryStatus.SENT, {DeliveryStatus.SENDING})
        == "status = 'sending'"
    )
    assert (
        DELIVERY_MACHINE.sql_guard(
            DeliveryStatus.QUEUED, {DeliveryStatus.IN_DOUBT, DeliveryStatus.FAILED}
        )
        == "status IN ('failed', 'in_doubt')"
    )
    assert DELIVERY_MACHINE.sources(DeliveryStatus.IN_DOUBT) == {DeliveryStatus.SENDING}
    for illegal in [
        (DeliveryStatus.SENT, DeliveryStatus.QUEUED),
        (DeliveryStatus.QUEUED, DeliveryStatus.SENT),
        (DeliveryStatus.CANCELLED, DeliveryStatus.SENT),
    ]:
        with pytest.raises(IllegalTransition):
            DELIVERY_MACHINE.sql_guard(illegal[1], {illegal[0]})
    with pytest.raises(IllegalTransition):
        SEND_MACHINE.sql_guard(
            SendStatus.RUNNING,
            {
                SendStatus.FINISHED,
                SendStatus.SCHEDULED,
                SendStatus.PAUSED,
                SendStatus.CANCELLED,
                SendStatus.RUNNING,
            },
        )


# A status write: an ORM ``.values(status=...)`` or SQL ``SET status = ...``.
_WRITE = re.compile(r"\.values\(\s*status=|SET status = ")
# ... of a delivery, a send or a release (imports and subscriptions have their own rules).
_OURS = re.compile(r"\b(?:Delivery|Send|Release|deliveries|sends|releases)\b")
# What makes one legal: a guard generated from a machine (inline or a module constant).
_GUARDED = re.compile(r"MACHINE\.(?:sql_)?guard\(|\{guard\}|\{_[A-Z_]+\}")


def _status_writes() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if _WRITE.search(line) and _OURS.search(
                "\n".join(lines[max(0, number - 6) : number + 2])
            ):
                # The statement around the write: its WHERE is within a few lines.
                window = "\n".join(lines[max(0, number - 12) : number + 12])
                found.append((str(path.relative_to(PACKAGE)), number + 1, window))
    return found


def test_every_status_write_in_the_code_is_guarded_by_its_machine() -> None:
    writes = _status_writes()
    assert len(writes) >= 10  # the scan does find the writes
    unguarded = [f"{path}:{line}" for path, line, window in writes if not _GUARDED.search(window)]
    assert not unguarded, f"status writes without a machine guard: {unguarded}"


def test_a_transition_removed_from_the_machine_breaks_the_statements_that_make_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    allowed = {k: set(v) for k, v in DELIVERY_MACHINE._allowed.items()}
    allowed[DeliveryStatus.SENDING].discard(DeliveryStatus.SENT)
    monkeypatch.setattr(DELIVERY_MACHINE, "_allowed", {k: frozenset(v) for k, v in allowed.items()})
    with pytest.raises(IllegalTransition):
        progress.acceptance_sql(many=True)  # built from the machine when the module loads
    with pytest.raises(IllegalTransition):
        progress.acceptance_sql(many=False)


@pytest.mark.usefixtures("monkeypatch")
@pytest.mark.parametrize(
    ("source", "target"),
    sorted(
        ((s, t) for s, targets in DELIVERY_MACHINE._allowed.items() for t in targets),
        key=str,
    ),
)
def test_each_delivery_move_is_checked_against_the_machine(
    source: DeliveryStatus, target: DeliveryStatus
) -> None:
    without = StateMachine(
        "delivery",
        {
            k: [t for t in v if (k, t) != (source, target)]
            for k, v in DELIVERY_MACHINE._allowed.items()
        },
    )
    DELIVERY_MACHINE.check(source, target)
    DELIVERY_MACHINE.sql_guard(target, {source})
    with pytest.raises(IllegalTransition):
        without.sql_guard(target, {source})
    with pytest.raises(IllegalTransition):
        without.check(source, target)


def _consistent(send: Send) -> bool:
    return send.release.status in services.RELEASE_BESIDE_SEND[send.status]


@pytest.mark.parametrize(
    ("start", "target"),
    sorted(((s, t) for s, targets in SEND_MACHINE._allowed.items() for t in targets), key=str),
)
def test_a_send_and_its_release_move_together_on_every_send_move(
    session: Session, start: SendStatus, target: SendStatus
) -> None:
    release = f.release(session, photo=False, attachments=False, contacts=False)
    release.status = {
        SendStatus.SCHEDULED: ReleaseStatus.SCHEDULED,
        SendStatus.RUNNING: ReleaseStatus.SENDING,
        SendStatus.PAUSED: ReleaseStatus.SENDING,
        SendStatus.FINISHED: ReleaseStatus.SENT,
        SendStatus.CANCELLED: ReleaseStatus.APPROVED,
    }[start]
    send = Send(release_id=release.id, status=start)
    session.add(send)
    session.flush()
    assert _consistent(send)
    services.move_send_and_release(session, send, target, release, by=None)
    assert send.status is target
    assert _consistent(send), (start, target, release.status)


def test_ledger_machines_are_the_ones_services_use() -> None:
    # What the services module itself uses (its imports are not re-exported).
    assert vars(services)["SEND_MACHINE"] is ledger.SEND_MACHINE
    assert vars(services)["DELIVERY_MACHINE"] is ledger.DELIVERY_MACHINE
