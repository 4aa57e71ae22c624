"""CSV in and out: reading an uploaded file, checking addresses fast, exporting journalists.

The import jobs built on these live in ``imports.py``; their bulk inserts in ``bulk.py``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Integer, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, aliased

from distributor.audience.models import (
    Beat,
    Journalist,
    Outlet,
    Subscription,
    SubscriptionStatus,
)
from distributor.audience.services import journalist_query
from distributor.csv_cells import escape_cell
from distributor.errors import ValidationFailed
from distributor.logs import get_logger
from distributor.mail import addresses

log = get_logger("distributor.audience.import")
FIELDS: tuple[str, ...] = (
    "email",
    "name",
    "outlet",
    "role",
    "country",
    "language",
    "phone",
    "notes",
)
FIELD_LABELS = {
    "email": "Email address",
    "name": "Name",
    "outlet": "Outlet",
    "role": "Role",
    "country": "Country (2-letter code)",
    "language": "Language",
    "phone": "Phone",
    "notes": "Notes",
}
MAX_LENGTHS = {"name": 200, "outlet": 200, "role": 120, "language": 12, "phone": 60}
_HEADER_GUESSES = {
    "email": {"email", "e-mail", "email address", "e-mail address", "mail", "address"},
    "name": {"name", "full name", "journalist", "contact", "contact name"},
    "outlet": {"outlet", "publication", "media", "media outlet", "newspaper", "company"},
    "role": {"role", "title", "job title", "position", "desk"},
    "country": {"country", "country code"},
    "language": {"language", "lang", "locale"},
    "phone": {"phone", "telephone", "mobile", "tel", "phone number"},
    "notes": {"notes", "note", "comments", "comment"},
}

# -- reading the upload --------------------------------------------------------------------------


# More columns than anyone maps (we import a dozen fields); wider files are refused at upload.
MAX_COLUMNS = 200


@dataclass(frozen=True)
class CsvShape:
    delimiter: str
    headers: list[str]


def inspect_csv(data: bytes, *, max_bytes: int) -> tuple[str, CsvShape]:
    """Decode and check an uploaded file; raise ``ValidationFailed`` with a clear reason."""
    if len(data) > max_bytes:
        raise ValidationFailed(
            f"The file is {len(data) / 1_048_576:.1f} MB; the limit is "
            f"{max_bytes / 1_048_576:.0f} MB. Split it into smaller files."
        )
    if not data.strip():
        raise ValidationFailed("The file is empty.")
    if b"\x00" in data[:65536]:
        raise ValidationFailed(
            "This does not look like a CSV file (it contains binary data). Export it from your "
            "spreadsheet as 'CSV UTF-8'."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            f"The file is not UTF-8 text (byte {exc.start}). Export it as 'CSV UTF-8'."
        ) from exc
    end = text.find("\n")
    first_line = text if end < 0 else text[:end]
    delimiter = max(",;\t", key=first_line.count)
    if first_line.count(delimiter) == 0:
        delimiter = ","
    columns = first_line.count(delimiter) + 1
    if columns > MAX_COLUMNS:
        # A mapping page with a select per column would be built in the request: refuse early.
        raise ValidationFailed(
            f"The file has {columns:,} columns; at most {MAX_COLUMNS} can be mapped. Keep the "
            "columns you import (address, name, outlet, ...) and save it again."
        )
    try:
        headers = next(csv.reader(io.StringIO(text), delimiter=delimiter))
    except (csv.Error, StopIteration) as exc:
        raise ValidationFailed(f"The file could not be read as CSV: {exc}") from exc
    headers = [h.strip() for h in headers]
    if not any(headers):
        raise ValidationFailed("The first row must name the columns.")
    if len(set(headers)) != len(headers):
        raise ValidationFailed("Two columns have the same name in the first row.")
    return text, CsvShape(delimiter, headers)


def guess_mapping(headers: list[str]) -> dict[str, str]:
    """Field -> header for the headers whose names say what they hold."""
    mapping: dict[str, str] = {}
    for header in headers:
        key = re.sub(r"[_\s]+", " ", header.strip().lower())
        for name, guesses in _HEADER_GUESSES.items():
            if key in guesses and name not in mapping:
                mapping[name] = header
                break
    return mapping


# -- checking addresses --------------------------------------------------------------------------


def clear_domain_cache() -> None:
    """Forget checked domains: DNS answers and memory should last one file, no longer."""
    addresses.clear_domain_cache()


def normalise_import_address(
    raw: str, *, check_dns: bool = False, relay: addresses.RelayExtensions | None = None
) -> str:
    """The one address check (``mail.addresses``); raises ``EmailNotValidError``."""
    return addresses.normalise_address(raw, check_deliverability=check_dns, relay=relay)


# -- export --------------------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "email",
    "name",
    "outlet",
    "role",
    "country",
    "language",
    "phone",
    "notes",
    "lawful_basis",
    "delivery_mode",
    "is_paused",
    "beats",
    "created_at",
)
EXPORT_PAGE_SIZE = 5000


def export_journalists_csv(session: Session, **filters: Any) -> Iterator[str]:
    """Stream the journalists matching the staff filters as CSV, one chunk per page of rows.

    Memory stays flat however large the audience: one query in id order read through a
    server-side cursor (PostgreSQL; ``stream_results``) ``EXPORT_PAGE_SIZE`` plain rows at a
    time, never ORM objects, each page with the beats of its own journalists only. The rows
    come from one snapshot, so an export is consistent even while imports run; the cursor's
    transaction stays open while the client downloads, which a slow client can stretch.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        value = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return value

    writer.writerow(EXPORT_COLUMNS)
    yield flush()
    outlet = aliased(Outlet)  # the free-text filter may join Outlet itself
    outlet_name = (
        select(outlet.name)
        .where(outlet.id == Journalist.outlet_id)
        .correlate(Journalist)
        .scalar_subquery()
    )
    stmt = (
        journalist_query(**filters)
        .order_by(None)
        .with_only_columns(
            Journalist.id,
            Journalist.email,
            Journalist.name,
            outlet_name,
            Journalist.role,
            Journalist.country,
            Journalist.language,
            Journalist.phone,
            Journalist.notes,
            Journalist.lawful_basis,
            Journalist.delivery_mode,
            Journalist.is_paused,
            Journalist.created_at,
        )
        .order_by(Journalist.id)
    )
    result = session.execute(
        stmt, execution_options={"stream_results": True, "yield_per": EXPORT_PAGE_SIZE}
    )
    on_postgres = session.get_bind().dialect.name == "postgresql"

    def page_ids(page: Sequence[Any]) -> ColumnElement[bool]:
        # One array parameter on PostgreSQL: a list of 5,000 parameters costs the driver more
        # to build and parse than the server needs to answer it.
        ids = [row[0] for row in page]
        if on_postgres:
            return Subscription.journalist_id == any_(bindparam("ids", ids, type_=ARRAY(Integer)))
        return Subscription.journalist_id.in_(ids)

    try:
        for page in result.partitions():
            beats_of: dict[int, list[str]] = {}
            for journalist_id, beat_name in session.execute(
                select(Subscription.journalist_id, Beat.name)
                .join(Beat, Beat.id == Subscription.beat_id)
                .where(
                    page_ids(page),
                    Subscription.status == SubscriptionStatus.CONFIRMED,
                )
                .order_by(Beat.name)
            ):
                beats_of.setdefault(journalist_id, []).append(beat_name)
            for (journalist_id, email, name, outlet, role, country, language, phone, notes,
                 lawful_basis, delivery_mode, is_paused, created_at) in page:  # fmt: skip
                # Text anyone may have typed is escaped; our own values (enum names, yes or
                # no, an ISO date) never start like a formula.
                writer.writerow(
                    [
                        escape_cell(email),
                        escape_cell(name),
                        escape_cell(outlet or ""),
                        escape_cell(role),
                        escape_cell(country),
                        escape_cell(language),
                        escape_cell(phone),
                        escape_cell(notes),
                        lawful_basis.value,
                        delivery_mode.value,
                        "yes" if is_paused else "no",
                        escape_cell("; ".join(beats_of.get(journalist_id, []))),
                        created_at.isoformat(),
                    ]
                )
            yield flush()
    finally:
        result.close()  # a download cut short ends the cursor too
