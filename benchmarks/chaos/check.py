"""Checking the sink's journal against the delivery ledger.

- duplicate: a recipient of the release that the sink accepted more than once (each extra
  acceptance counts one);
- lost: a ledger row whose message the sink never accepted and that is not legitimately
  final: recorded ``sent`` yet absent from the sink; still queued/sending/deferred when the
  scenario ends; cancelled; or failed (or suppressed) when the sink never refused THAT
  recipient with a 5xx at RCPT or after the dot (a refusal at MAIL FROM is about us, never
  the recipient: STANDARDS.md, RFC 5321 and RFC 3463). An address put on the suppression list
  without such a refusal also counts;
- in doubt: ledger rows in the in-doubt status (``unknown`` today, ``in_doubt`` after the
  ledger rework; both are accepted), delivered or not.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

IN_DOUBT = frozenset({"unknown", "in_doubt"})
PENDING = frozenset({"queued", "sending", "deferred"})
REFUSED_FINAL = frozenset({"failed", "suppressed"})


@dataclass
class Journal:
    accepted: Counter[str] = field(default_factory=Counter)  # recipient -> acceptances
    tokens: Counter[str] = field(default_factory=Counter)  # VERP token -> acceptances
    dropped: int = 0  # dropped after the dot on purpose
    blackholed: int = 0  # connections accepted and never greeted
    refused_permanently: set[str] = field(default_factory=set)  # 5xx at RCPT or the dot
    refusals: Counter[str] = field(default_factory=Counter)  # "<stage> <code>" -> count

    @property
    def total(self) -> int:
        return sum(self.accepted.values())


def read_journal(path: Path) -> Journal:
    journal = Journal()
    if not path.exists():
        return journal
    with path.open("rb") as f:
        for raw in f:
            parts = raw.rstrip(b"\n").decode("utf-8", "replace").split("\t")
            kind = parts[0]
            if kind == "A" and len(parts) >= 3:
                journal.tokens[parts[1]] += 1
                journal.accepted[parts[2].lower()] += 1
            elif kind == "D":
                journal.dropped += 1
            elif kind == "B":
                journal.blackholed += 1
            elif kind == "R" and len(parts) >= 4:
                stage, code, who = parts[1], int(parts[2]), parts[3].lower()
                journal.refusals[f"{stage} {code}"] += 1
                if stage in ("rcpt", "dot") and 500 <= code < 600:
                    journal.refused_permanently.add(who)
    return journal


@dataclass
class Verdict:
    messages: int = 0  # ledger rows of the send
    duplicates: int = 0
    lost: int = 0
    in_doubt: int = 0
    in_doubt_delivered: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    strays: int = 0  # accepted by the sink for nobody in the ledger
    wrongly_suppressed: int = 0
    examples: list[str] = field(default_factory=list)  # a few lost or duplicated rows

    def note(self, line: str) -> None:
        if len(self.examples) < 5:
            self.examples.append(line)


def check(engine: Engine, send_id: int, journal: Journal) -> Verdict:
    verdict = Verdict()
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, lower(email), status, smtp_code, left(smtp_response, 120) "
                "FROM deliveries WHERE send_id = :send_id"
            ),
            {"send_id": send_id},
        ).all()
        suppressed = {
            str(a).lower()
            for (a,) in conn.execute(
                text("SELECT address FROM suppressions WHERE address IS NOT NULL")
            )
        }
    ledger_emails: set[str] = set()
    for delivery_id, email, status, code, response in rows:
        status = str(status)
        verdict.messages += 1
        verdict.statuses[status] += 1
        email = email or ""
        ledger_emails.add(email)
        times = journal.accepted.get(email, 0)
        if times > 1:
            verdict.duplicates += times - 1
            verdict.note(f"duplicate: {email} accepted {times} times, ledger {status}")
        is_lost = False
        if status in IN_DOUBT:
            verdict.in_doubt += 1
            verdict.in_doubt_delivered += times > 0
        elif times == 0:
            # sent without arriving, pending forever, cancelled, refused but not by the
            # recipient's server for the recipient
            is_lost = status not in REFUSED_FINAL or email not in journal.refused_permanently
        if email in suppressed and email not in journal.refused_permanently:
            verdict.wrongly_suppressed += 1
            is_lost = is_lost or times == 0
        if is_lost:
            verdict.lost += 1
            verdict.note(f"lost: delivery {delivery_id} {email} {status} {code} {response!r}")
    verdict.strays = sum(n for e, n in journal.accepted.items() if e not in ledger_emails)
    return verdict
