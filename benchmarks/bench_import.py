"""``make bench-import N=100000``: a CSV of N journalists through the real import service.

Creates a throwaway PostgreSQL database (server from DATABASE_URL, default
postgresql://postgres@127.0.0.1:5432/postgres), migrates it, seeds a beat and a media list and
a few thousand existing journalists (so the dry run finds duplicates against the database),
generates the CSV (with some invalid and duplicate rows), uploads it and runs the dry run,
then times ``run_import_job``: the worker's whole job (validate again, bulk insert outlets,
journalists, subscriptions and list memberships in one transaction). Drops the database and
prints as its last line:

    import: <N> rows in <S> s
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select  # noqa: E402

from benchmarks.throwaway_db import create_database, drop_database  # noqa: E402
from distributor.audience import imports  # noqa: E402
from distributor.audience.models import (  # noqa: E402
    Beat,
    ImportStatus,
    Journalist,
    LawfulBasis,
    MediaList,
    Subscription,
)
from distributor.db import Database, make_engine, utcnow  # noqa: E402
from distributor.migrate import upgrade  # noqa: E402
from distributor.settings import Settings  # noqa: E402

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def log(message: str) -> None:
    print(f"[bench-import] {message}", flush=True)


def make_csv(n: int, existing: int) -> bytes:
    """N data rows: mostly new people, some already in the database, a few bad or repeated."""
    out = io.StringIO()
    out.write("Email,Full name,Outlet,Role,Country,Language,Phone,Notes\n")
    for i in range(n):
        if i % 1000 == 999:
            out.write(f"broken-address-{i},Nobody {i},,,,,,\n")
        elif i % 1000 == 998:
            out.write(f"person{i - 1}@desk{(i - 1) % 400}.example.org,Repeat {i},,,,,,\n")
        elif i < existing:
            out.write(f"known{i}@old.example.net,Known {i},Old Outlet,,GB,en,,\n")
        else:
            out.write(
                f"person{i}@desk{i % 400}.example.org,Person {i},Outlet {i % 700},"
                f'Reporter,GB,en,+44 1632 {i % 1000000:06d},"notes, with a comma"\n'
            )
    return out.getvalue().encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000, help="rows in the CSV")
    parser.add_argument("--existing", type=int, default=2_000, help="rows already in the DB")
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL") or DEFAULT_SERVER
    url, name = create_database(server, "bench_import")
    log(f"database {name} created")
    settings = Settings(
        database_url=url,
        data_dir=str(ROOT / "var"),
        import_max_bytes=200 * 1024 * 1024,
    )
    engine = make_engine(settings.sqlalchemy_url)
    try:
        with engine.begin() as conn:
            upgrade(settings.sqlalchemy_url, conn)
        db = Database(engine)
        now = utcnow()
        with db.session() as session, session.begin():
            beat = Beat(name="Climate", slug="climate")
            media_list = MediaList(name="Bench list")
            session.add_all([beat, media_list])
            session.flush()
            beat_id, list_id = beat.id, media_list.id
            session.execute(
                insert(Journalist),
                [
                    {
                        "email": f"known{i}@old.example.net",
                        "email_normalized": f"known{i}@old.example.net",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(args.existing)
                ],
            )
        data = make_csv(args.n, args.existing)
        log(f"CSV generated: {args.n} rows, {len(data) / 1_048_576:.1f} MB")

        started = time.perf_counter()
        with db.session() as session, session.begin():
            job = imports.create_import_job(
                session, filename="bench.csv", data=data, settings=settings, by=None
            )
            job = imports.preview_import(
                session,
                job.id,
                settings=settings,
                mapping={
                    "email": "Email",
                    "name": "Full name",
                    "outlet": "Outlet",
                    "role": "Role",
                    "country": "Country",
                    "language": "Language",
                    "phone": "Phone",
                    "notes": "Notes",
                },
                lawful_basis=LawfulBasis.LEGITIMATE_INTEREST,
                beat_ids=[beat_id],
                media_list_id=list_id,
            )
            job_id = job.id
            log(
                f"dry run: {job.total_rows} rows, {job.valid_rows} new, "
                f"{job.existing_count} existing, {job.error_count} problems "
                f"in {time.perf_counter() - started:.1f} s"
            )
            job.status = ImportStatus.QUEUED
            job.queued_at = utcnow()

        started = time.perf_counter()
        result = imports.run_import_job(db, job_id, settings=settings)
        elapsed = time.perf_counter() - started
        if result is None or result.status != ImportStatus.SUCCEEDED:
            raise SystemExit(f"import failed: {result.error_message if result else 'no job'}")
        with db.session() as session:
            journalists = session.scalar(select(func.count()).select_from(Journalist))
            subscriptions = session.scalar(select(func.count()).select_from(Subscription))
        log(
            f"created {result.created_count}, existing {result.existing_count}, "
            f"skipped {result.error_count}; {journalists} journalists and "
            f"{subscriptions} subscriptions in the database"
        )
    finally:
        engine.dispose()
        drop_database(server, name)
        log(f"database {name} dropped")
    print(f"import: {result.total_rows} rows in {elapsed:.1f} s", flush=True)


if __name__ == "__main__":
    main()
