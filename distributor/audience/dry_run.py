"""The dry run of a CSV import: every row checked (address, sizes, duplicates) without writing."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from email_validator import EmailNotValidError
from sqlalchemy import String, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from distributor.audience.bulk import (
    CHUNK_SIZE,
    ProgressCallback,
    chunks,
)
from distributor.audience.csv_io import (
    FIELD_LABELS,
    MAX_LENGTHS,
    clear_domain_cache,
    normalise_import_address,
)
from distributor.audience.models import (
    ImportJob,
    Journalist,
    Suppression,
)
from distributor.audience.services import address_hash
from distributor.errors import ValidationFailed
from distributor.mail.addresses import RelayExtensions
from distributor.settings import Settings

# Addresses looked up at once on PostgreSQL (existing journalists, suppressions).
LOOKUP_CHUNK = 10_000


def job_layout(job: ImportJob) -> dict[str, Any]:
    layout: dict[str, Any] = json.loads(job.column_map or "{}")
    return layout


@dataclass
class RowProblem:
    row_number: int
    email: str
    kind: str
    message: str


@dataclass
class Analysis:
    total_rows: int = 0
    rows: list[dict[str, str]] = field(default_factory=list)  # valid, new journalists
    existing_ids: dict[str, int] = field(default_factory=dict)  # address -> id
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return sum(1 for p in self.problems if p.kind != "existing")


def _records(job: ImportJob) -> Iterator[tuple[int, list[str]]]:
    layout = job_layout(job)
    reader = csv.reader(io.StringIO(job.content), delimiter=layout.get("delimiter", ","))
    try:
        next(reader)  # header
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            # Row numbers as a spreadsheet shows them: the header is row 1.
            yield reader.line_num, record
    except csv.Error as exc:
        raise ValidationFailed(f"The file is malformed near line {reader.line_num}: {exc}") from exc


def analyse(
    session: Session,
    job: ImportJob,
    settings: Settings,
    *,
    progress: ProgressCallback | None = None,
    relay: RelayExtensions | None = None,
) -> Analysis:
    """Validate every row: address syntax, field sizes, duplicates in the file and the database."""
    layout = job_layout(job)
    headers: list[str] = layout.get("headers", [])
    mapping: dict[str, str] = layout.get("fields", {})
    if "email" not in mapping:
        raise ValidationFailed("Choose which column holds the email address.")
    positions = {
        name: headers.index(header) for name, header in mapping.items() if header in headers
    }
    width = len(headers)
    check_dns = settings.email_check_deliverability
    clear_domain_cache()  # DNS answers and memory last one file, no longer
    result = Analysis()
    seen: dict[str, int] = {}
    candidates: list[tuple[int, dict[str, str]]] = []
    for row_number, record in _records(job):
        result.total_rows += 1
        if progress is not None and result.total_rows % CHUNK_SIZE == 0:
            progress(result.total_rows)
        raw_email = record[positions["email"]].strip() if positions["email"] < len(record) else ""
        if len(record) > width:
            result.problems.append(
                RowProblem(
                    row_number,
                    raw_email[:320],
                    "invalid",
                    f"has {len(record)} cells; the header has {width}",
                )
            )
            continue
        if not raw_email:
            result.problems.append(RowProblem(row_number, "", "invalid", "no email address"))
            continue
        try:
            address = normalise_import_address(raw_email, check_dns=check_dns, relay=relay)
        except EmailNotValidError as exc:
            result.problems.append(RowProblem(row_number, raw_email[:320], "invalid", str(exc)))
            continue
        if address in seen:
            result.problems.append(
                RowProblem(
                    row_number, address, "duplicate_in_file", f"same address as row {seen[address]}"
                )
            )
            continue
        seen[address] = row_number
        values, problem = _field_values(record, positions, address)
        if problem:
            result.problems.append(RowProblem(row_number, address, "invalid", problem))
            continue
        candidates.append((row_number, values))

    existing, suppressed = _known_and_suppressed(
        session, [values["email"] for _, values in candidates]
    )
    for row_number, values in candidates:
        address = values["email"]
        if address in existing:
            result.existing_ids[address] = existing[address]
            result.problems.append(
                RowProblem(
                    row_number, address, "existing", "already in the audience: left unchanged"
                )
            )
        elif address in suppressed:
            result.problems.append(
                RowProblem(row_number, address, "suppressed", "on the suppression list: skipped")
            )
        else:
            result.rows.append(values)
    result.problems.sort(key=lambda p: p.row_number)
    return result


def _field_values(
    record: list[str], positions: dict[str, int], address: str
) -> tuple[dict[str, str], str]:
    """The row's mapped fields, and what is wrong with the first bad one ("" when none is)."""
    values = {"email": address}
    for name, pos in positions.items():
        if name == "email":
            continue
        value = record[pos].strip() if pos < len(record) else ""
        limit = MAX_LENGTHS.get(name)
        if limit is not None and len(value) > limit:
            return values, f"{FIELD_LABELS[name]} is longer than {limit} characters"
        if name == "country":
            value = value.upper()
            if value and not re.fullmatch(r"[A-Z]{2}", value):
                return values, "country must be a two-letter code such as GB or DE"
        values[name] = value
    return values, ""


def _known_and_suppressed(
    session: Session, addresses: list[str]
) -> tuple[dict[str, int], set[str]]:
    """Which addresses are journalists already (address -> id) and which are suppressed."""
    existing: dict[str, int] = {}
    suppressed: set[str] = set()
    # PostgreSQL takes each chunk as one array (a million addresses: 100 round trips, not
    # 2,000 statements with a thousand parameters each); SQLite an IN list.
    on_postgres = session.get_bind().dialect.name == "postgresql"
    for chunk in chunks(addresses, LOOKUP_CHUNK if on_postgres else 1000):
        hashes = {address_hash(a): a for a in chunk}
        if on_postgres:
            known = Journalist.email_normalized == any_(
                bindparam("addresses", chunk, type_=ARRAY(String))
            )
            listed = Suppression.address_hash == any_(
                bindparam("hashes", list(hashes), type_=ARRAY(String))
            )
        else:
            known = Journalist.email_normalized.in_(chunk)
            listed = Suppression.address_hash.in_(list(hashes))
        existing.update(
            session.execute(select(Journalist.email_normalized, Journalist.id).where(known)).all()
        )
        suppressed.update(
            hashes[h] for h in session.scalars(select(Suppression.address_hash).where(listed))
        )
    return existing, suppressed
