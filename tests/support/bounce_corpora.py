"""Public bounce corpora with their expected readings, and how right a reader is on them.

The corpora (``tests/fixtures/bounces/corpora``) come from package source distributions:
``flufl_bounce/`` from flufl.bounce 6.0.0 (Apache-2.0), ``bounced/`` from bounced 0.3.0
(MIT), which also carries the samples of the Ruby bounce_email gem. ``EXPECTED.tsv`` holds,
for each file, the classification and every failed recipient with its kind.

A reading is reduced to what acting on it needs: whether recipients failed or were delayed
(or neither), which addresses, and (ours only; flufl.bounce gives no reason) each one's kind.
"""

from __future__ import annotations

import email
import email.policy
import logging
from dataclasses import dataclass
from pathlib import Path

from flufl.bounce import all_failures

from distributor.bounces.models import Classification
from distributor.bounces.parsing import parse_message

CORPORA = Path(__file__).resolve().parents[1] / "fixtures" / "bounces" / "corpora"
FAILED, DELAYED, NONE = "failed", "delayed", "none"


@dataclass(frozen=True)
class Expected:
    name: str
    classification: str
    kinds: dict[str, str]  # address -> kind

    @property
    def outcome(self) -> str:
        return {"bounce": FAILED, "delay": DELAYED}.get(self.classification, NONE)


@dataclass(frozen=True)
class Reading:
    outcome: str
    addresses: frozenset[str]
    kinds: dict[str, str] | None = None  # None: the reader gives no kind


def expected_rows() -> list[Expected]:
    rows = []
    for line in (CORPORA / "EXPECTED.tsv").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, classification, recipients = line.split("\t")[:3]
        kinds = dict(r.split("=", 1) for r in recipients.split()) if recipients != "-" else {}
        rows.append(Expected(name, classification, kinds))
    return rows


def ours(raw: bytes) -> tuple[Reading, str]:
    report = parse_message(raw, envelope_to=[], bounce_domain="bounces.example.org")
    outcome = {Classification.BOUNCE: FAILED, Classification.DELAY: DELAYED}.get(
        report.classification, NONE
    )
    kinds = {r.address: r.kind.value for r in report.recipients}
    reading = Reading(outcome, frozenset(kinds), kinds)
    return reading, report.classification.value


def flufl_alone(raw: bytes) -> Reading:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)
    try:
        temporary, permanent = all_failures(msg)
    except Exception:
        return Reading(NONE, frozenset())
    if permanent:
        return Reading(FAILED, frozenset(a.decode("utf-8", "replace").lower() for a in permanent))
    if temporary:
        return Reading(DELAYED, frozenset(a.decode("utf-8", "replace").lower() for a in temporary))
    return Reading(NONE, frozenset())


def is_right(reading: Reading, expected: Expected, *, with_kind: bool) -> bool:
    if (reading.outcome, reading.addresses) != (expected.outcome, frozenset(expected.kinds)):
        return False
    if with_kind and expected.kinds:
        return reading.kinds == expected.kinds
    return True


@dataclass
class Score:
    files: int = 0
    ours_right: int = 0
    flufl_right: int = 0
    ours_right_with_kind: int = 0
    dsn_files: int = 0  # well-formed DSNs: ours read them from their per-recipient fields
    dsn_ours_right: int = 0  # recipients, outcome and every kind right
    dsn_flufl_right: int = 0  # recipients and outcome right (it gives no kind)
    flufl_only: tuple[str, ...] = ()  # flufl.bounce right, ours wrong
    ours_only: tuple[str, ...] = ()


def score() -> Score:
    result = Score()
    flufl_only: list[str] = []
    ours_only: list[str] = []
    for row in expected_rows():
        raw = (CORPORA / row.name).read_bytes()
        reading, _ = ours(raw)
        report = parse_message(raw, envelope_to=[], bounce_domain="bounces.example.org")
        theirs = flufl_alone(raw)
        right = is_right(reading, row, with_kind=False)
        flufl = is_right(theirs, row, with_kind=False)
        result.files += 1
        result.ours_right += right
        result.flufl_right += flufl
        result.ours_right_with_kind += is_right(reading, row, with_kind=True)
        if report.detector == "rfc3464":
            result.dsn_files += 1
            # flufl.bounce names addresses but never why: on a DSN, only ours gives the kind.
            result.dsn_ours_right += is_right(reading, row, with_kind=True)
            result.dsn_flufl_right += flufl
        if flufl and not right:
            flufl_only.append(row.name)
        if right and not flufl:
            ours_only.append(row.name)
    result.flufl_only = tuple(flufl_only)
    result.ours_only = tuple(ours_only)
    return result
