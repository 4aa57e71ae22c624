"""``make bench-audience N=1000000``: staff audience work at a million journalists.

Creates a throwaway PostgreSQL database (server from DATABASE_URL, default
postgresql://postgres@127.0.0.1:5432/postgres), migrates it and seeds, set-based
(``generate_series`` in a few statements), N journalists over 2,000 outlets, two beat
subscriptions each among 40 beats (90% confirmed), 11 media lists, 1% suppressed, 5% in
digest mode, 1% paused, an earlier send to a third of them with a human open from a ninth
(what the "engaged" filter reads), and a release filed under 10 beats and 2 media lists.

Then it measures, through the product's own code (service functions and the Flask app
through its test client, logged in as an editor), each as the median of ``--runs`` runs:

- the send page's audience breakdown (``delivery.services.audience_breakdown``),
- the journalists list filtered by beat and engagement (``GET /staff/audience/journalists``),
  its first, 20th and 100th page (keyset pages, reached through their "Next" links),
- the streamed CSV export of every journalist (``GET .../journalists/export.csv``), with the
  growth of this process's resident memory while it streams,
- a CSV import of ``--import-rows`` (default N) new journalists: upload and dry run, then the
  worker's whole job (``run_import_job``: validate again, insert in one transaction).

With ``--reuse`` the seeded audience is kept as a template database
(``bench_audience_seed_<N>_v<version>``) and each run measures on a file-level copy of it, so
only the first run pays for seeding (``--drop-seed`` removes it). Drops the database (never
the template) and prints as its last line:

    audience: <N> journalists, breakdown <B> ms, list <L> ms, export <E> rows/s, import <I> s
"""

from __future__ import annotations

import argparse
import html
import io
import os
import re
import resource
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, text  # noqa: E402

from benchmarks.throwaway_db import create_database, database_exists, drop_database  # noqa: E402
from distributor.accounts.models import Role  # noqa: E402
from distributor.accounts.services import create_user  # noqa: E402
from distributor.app import create_app  # noqa: E402
from distributor.audience import imports  # noqa: E402
from distributor.audience.models import ImportStatus, Journalist, LawfulBasis  # noqa: E402
from distributor.db import Database, make_engine, utcnow  # noqa: E402
from distributor.delivery.services import audience_breakdown  # noqa: E402
from distributor.migrate import upgrade  # noqa: E402
from distributor.settings import Settings  # noqa: E402

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
PASSWORD = "bench audience password 0123456789"
BEATS, OUTLETS, RELEASE_BEATS = 40, 2000, 10
SEED_VERSION = 1  # bump when SEED changes, so --reuse seeds a new template
_NEXT = re.compile(r'rel="next" href="([^"]+)"')
_CSRF = re.compile(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"')


def log(message: str) -> None:
    print(f"[bench-audience] {message}", flush=True)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def median_ms(fn: Callable[[], object], runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), times


# -- seeding (set-based; the setup, not what is measured) --------------------------------------

SEED = [
    # outlets and beats
    "INSERT INTO outlets (name, website, country) "
    "SELECT 'Outlet ' || g, '', 'GB' FROM generate_series(1, :outlets) g",
    "INSERT INTO beats (name, slug, description, is_public, created_at) "
    "SELECT 'Beat ' || lpad(g::text, 2, '0'), 'beat-' || g, '', true, now() "
    "FROM generate_series(1, :beats) g",
    # journalists: 5% digest readers, 1% paused
    """INSERT INTO journalists (email, email_normalized, name, outlet_id, role, country, language,
        phone, notes, delivery_mode, is_paused, is_tracking_allowed, lawful_basis, created_at,
        updated_at)
    SELECT 'j' || g || '@desk' || (g % 5000) || '.example.org',
           'j' || g || '@desk' || (g % 5000) || '.example.org',
           (ARRAY['Alex','Sam','Jo','Kim','Lee','Max','Noor','Ola','Rui','Uma'])[1 + g % 10]
             || ' ' || md5(g::text)::varchar(8),
           (SELECT min(id) FROM outlets) + g % :outlets, 'Reporter', 'GB', 'en', '', '',
           CASE WHEN g % 20 = 0 THEN 'daily_digest' ELSE 'each_release' END, g % 100 = 7, true,
           'consent', now() - interval '400 days', now()
    FROM generate_series(1, :n) g""",
    # two beats each; 90% confirmed, 5% pending, 5% unsubscribed
    """INSERT INTO subscriptions (journalist_id, beat_id, status, source, consent_at,
        consent_method, consent_text_version, confirmed_at, created_at)
    SELECT j.id, b.first + v.k,
           CASE WHEN j.id % 20 = 3 THEN 'pending' WHEN j.id % 20 = 4 THEN 'unsubscribed'
                ELSE 'confirmed' END,
           'import', now(), 'import:consent', 'bench', now(), now()
    FROM journalists j
    CROSS JOIN (SELECT min(id) AS first FROM beats) b
    CROSS JOIN LATERAL (VALUES (j.id % :beats), ((j.id * 7 + 3) % :beats)) v(k)
    ON CONFLICT DO NOTHING""",
    # eleven media lists: ten of 2% of the audience each, one of 10%
    "INSERT INTO media_lists (name, description, created_at) "
    "SELECT 'List ' || g, '', now() FROM generate_series(0, 10) g",
    """INSERT INTO media_list_members (media_list_id, journalist_id)
    SELECT l.id, j.id FROM journalists j
    JOIN media_lists l ON (l.name = 'List 10' AND j.id % 10 = 1)
                       OR (l.name <> 'List 10' AND j.id % 50 = substr(l.name, 6)::int)""",
    # 1% suppressed
    """INSERT INTO suppressions (address_hash, address, reason, note, created_at)
    SELECT encode(sha256(convert_to(lower(email_normalized), 'UTF8')), 'hex'),
           email_normalized, 'hard_bounce', '', now()
    FROM journalists WHERE id % 100 = 11""",
]


def seed(db: Database, n: int) -> tuple[int, int]:
    """Seed the audience; returns (the release to send, a beat to filter by)."""
    params = {"n": n, "beats": BEATS, "outlets": OUTLETS}
    with db.engine.begin() as conn:
        for statement in SEED:
            started = time.perf_counter()
            conn.execute(text(statement), params)
            log(f"  {statement.split()[2]:<20} {time.perf_counter() - started:6.1f} s")
        conn.execute(
            text(
                "INSERT INTO release_kinds (name, slug, position) "
                "VALUES ('Press release', 'press-release', 0)"
            )
        )
        kind_id = conn.execute(text("SELECT id FROM release_kinds")).scalar_one()
        release_ids = []
        for slug, status in (("earlier", "sent"), ("sea-wall", "approved")):
            release_ids.append(
                conn.execute(
                    text(
                        "INSERT INTO releases (kind_id, title, slug, summary, body_markdown, "
                        "body_html, status, photo_caption, photo_credit, photo_alt, "
                        "campaign_tags, preview_token, created_at, updated_at) VALUES "
                        "(:kind, :slug, :slug, '', '', '<p>Body</p>', :status, '', '', '', '', "
                        ":token, now(), now()) RETURNING id"
                    ),
                    {"kind": kind_id, "slug": slug, "status": status, "token": slug + "-token"},
                ).scalar_one()
            )
        earlier, release_id = release_ids
        # An earlier send to a third of the audience, 10 days ago; a ninth opened it as people
        # do (a human open), another ninth only through a machine (Apple MPP).
        send_id = conn.execute(
            text(
                "INSERT INTO sends (release_id, status, started_at, finished_at, "
                "recipient_count, created_at) VALUES (:r, 'finished', now() - interval "
                "'10 days', now() - interval '10 days', 0, now()) RETURNING id"
            ),
            {"r": earlier},
        ).scalar_one()
        started = time.perf_counter()
        conn.execute(
            text(
                """INSERT INTO deliveries (send_id, release_id, journalist_id, email,
                recipient_domain, status, matched_beats, matched_lists, attempts, verp_token,
                smtp_response, is_policy_rejection, sent_at, smtp_code, created_at, updated_at)
                SELECT :s, :r, id, email, split_part(email, '@', 2), 'sent', 'Beat 01', '', 1,
                       md5(id::text), '250 ok', false, now() - interval '10 days', 250,
                       now() - interval '10 days', now()
                FROM journalists WHERE id % 3 = 0"""
            ),
            {"s": send_id, "r": earlier},
        )
        conn.execute(
            text(
                """INSERT INTO tracking_events (event_uid, delivery_id, release_id, journalist_id,
                kind, occurred_at, method, user_agent, is_machine, machine_reason,
                classified_at, created_at)
                SELECT md5('e' || d.id), d.id, d.release_id, d.journalist_id, 'open',
                       d.sent_at + interval '2 hours', 'GET', 'Mozilla/5.0',
                       d.journalist_id % 9 <> 0, CASE WHEN d.journalist_id % 9 <> 0
                       THEN 'apple_mpp' ELSE '' END, now(), now()
                FROM deliveries d WHERE d.journalist_id % 9 IN (0, 3)"""
            )
        )
        log(f"  earlier send + events {time.perf_counter() - started:6.1f} s")
        first_beat = conn.execute(text("SELECT min(id) FROM beats")).scalar_one()
        conn.execute(
            text(
                "INSERT INTO release_beats (release_id, beat_id) "
                "SELECT :r, id FROM beats ORDER BY id LIMIT :k"
            ),
            {"r": release_id, "k": RELEASE_BEATS},
        )
        conn.execute(
            text(
                "INSERT INTO release_media_lists (release_id, media_list_id) "
                "SELECT :r, id FROM media_lists WHERE name IN ('List 10', 'List 49')"
                " OR name = 'List 3'"
            ),
            {"r": release_id},
        )
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        started = time.perf_counter()
        conn.execute(text("VACUUM ANALYZE"))
        log(f"  vacuum analyze       {time.perf_counter() - started:6.1f} s")
    return release_id, first_beat + 5


def seeded_ids(db: Database) -> tuple[int, int]:
    """The release to send and the beat to filter by in an already seeded database."""
    with db.engine.connect() as conn:
        release_id = conn.execute(
            text("SELECT id FROM releases WHERE slug = 'sea-wall'")
        ).scalar_one()
        first_beat = conn.execute(text("SELECT min(id) FROM beats")).scalar_one()
    return release_id, first_beat + 5


def make_csv(rows: int, tag: str) -> bytes:
    out = io.StringIO()
    out.write("Email,Full name,Outlet,Role,Country,Language,Phone,Notes\n")
    for i in range(rows):
        out.write(
            f"new{tag}{i}@wire{i % 3000}.example.net,New Person {i},Outlet {i % 2500},"
            f'Reporter,GB,en,+44 1632 {i % 1000000:06d},"notes, with a comma"\n'
        )
    return out.getvalue().encode()


# -- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1_000_000, help="journalists to seed")
    parser.add_argument("--runs", type=int, default=5, help="runs of breakdown and list")
    parser.add_argument("--export-runs", type=int, default=3)
    parser.add_argument("--import-rows", type=int, default=None, help="default: N")
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the database (debugging)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="seed once into a kept template database (bench_audience_seed_<N>) and measure "
        "on a fresh copy of it each run; `--drop-seed` removes the template",
    )
    parser.add_argument("--drop-seed", action="store_true", help="drop the kept seed, then exit")
    args = parser.parse_args()
    import_rows = args.n if args.import_rows is None else args.import_rows

    server = os.environ.get("DATABASE_URL") or DEFAULT_SERVER
    template = f"bench_audience_seed_{args.n}_v{SEED_VERSION}"
    if args.drop_seed:
        drop_database(server, template)
        log(f"database {template} dropped")
        return 0
    seeded = args.reuse and database_exists(server, template)
    if args.reuse and not seeded:
        url, _ = create_database(server, template, exact=True)
        log(f"seeding the kept template {template}")
        engine = make_engine(Settings(database_url=url).sqlalchemy_url)
        try:
            with engine.begin() as conn:
                upgrade(Settings(database_url=url).sqlalchemy_url, conn)
            started = time.perf_counter()
            seed(Database(engine), args.n)
            log(f"seeded in {time.perf_counter() - started:.1f} s")
        except BaseException:
            engine.dispose()
            drop_database(server, template)
            raise
        engine.dispose()
    started = time.perf_counter()
    url, name = create_database(server, "bench_audience", template=template if args.reuse else None)
    log(
        f"database {name} created"
        + (f" from {template} in {time.perf_counter() - started:.1f} s" if args.reuse else "")
    )
    settings = Settings(
        env="development",
        secret_key=secrets.token_urlsafe(48),
        database_url=url,
        data_dir=str(ROOT / "var" / "bench-audience"),
        import_max_bytes=1024 * 1024 * 1024,
        rate_limits_enabled=False,
        log_level="WARNING",
    )
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.sqlalchemy_url)
    results: dict[str, float] = {}
    try:
        with engine.begin() as conn:
            upgrade(settings.sqlalchemy_url, conn)
        db = Database(engine)
        if args.reuse:
            release_id, beat_id = seeded_ids(db)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE"))  # a copied database has no statistics yet
        else:
            started = time.perf_counter()
            log(f"seeding {args.n} journalists")
            release_id, beat_id = seed(db, args.n)
            log(f"seeded in {time.perf_counter() - started:.1f} s")
        with db.session() as session, session.begin():
            create_user(
                session, email="bench@example.org", name="Bench", password=PASSWORD,
                role=Role.EDITOR,
            )  # fmt: skip
            journalists = session.scalar(select(func.count()).select_from(Journalist)) or 0

        # -- the send page's audience breakdown ----------------------------------------------
        def breakdown() -> object:
            with db.session() as session:
                return audience_breakdown(session, release_id)

        result = breakdown()
        log(f"breakdown: {result}")
        results["breakdown"], times = median_ms(breakdown, args.runs)
        log(f"breakdown runs (ms): {', '.join(f'{t:.0f}' for t in times)}")

        # -- the journalists list, by beat and engagement ----------------------------------
        app = create_app(settings, db=db)
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = _CSRF.search(page)
        assert token, "no CSRF token on the login page"
        response = client.post(
            "/login",
            data={"email": "bench@example.org", "password": PASSWORD, "csrf_token": token[1]},
        )
        assert response.status_code == 302, response.status_code
        base = f"/staff/audience/journalists?beat={beat_id}&engagement=engaged"
        first = client.get(base)
        assert first.status_code == 200, first.status_code
        body = first.get_data(as_text=True)
        found = re.search(r"Journalists <small>([^<]*)</small>", body)
        log(f"list by beat and engagement: {found[1] if found else '(no total shown)'}")
        # Pages go by keyset ("Next" carries the last row's id): walk the links once to find
        # the 20th and the 100th page (or the last, if fewer), then time those pages.
        pages, path, walked = [(1, base)], base, 1
        while walked < 100:
            link = _NEXT.search(client.get(path).get_data(as_text=True))
            if link is None:
                break
            path, walked = html.unescape(link[1]), walked + 1
            if walked == 20:
                pages.append((walked, path))
        if walked != pages[-1][0]:
            pages.append((walked, path))
        log(f"list: walked {walked} pages of 50")
        list_times = []
        for number, path in pages:
            value, times = median_ms(lambda p=path: _ok(client.get(p)), args.runs)  # type: ignore[misc]
            list_times.append(value)
            log(f"list page {number}: median {value:.0f} ms of {[round(t) for t in times]}")
        results["list"] = statistics.median(list_times) if list_times else float("nan")

        # -- the streamed CSV export -------------------------------------------------------
        rates, growth = [], []
        for _ in range(args.export_runs):
            before = peak = rss_mb()
            rows = 0
            started = time.perf_counter()
            response = client.get("/staff/audience/journalists/export.csv", buffered=False)
            assert response.status_code == 200
            for chunk in response.response:
                rows += chunk.count(b"\n") if isinstance(chunk, bytes) else chunk.count("\n")
                if rows % 20000 < 50:
                    peak = max(peak, rss_mb())
            response.close()
            elapsed = time.perf_counter() - started
            peak = max(peak, rss_mb())
            rates.append((rows - 1) / elapsed)
            growth.append(peak - before)
            log(
                f"export: {rows - 1} rows in {elapsed:.1f} s, RSS {before:.0f} MB -> peak "
                f"{peak:.0f} MB (+{peak - before:.0f} MB)"
            )
        results["export"] = statistics.median(rates) if rates else float("nan")

        # -- the CSV import ------------------------------------------------------------------
        results["import"] = float("nan")
        if not args.skip_import and import_rows:
            data = make_csv(import_rows, secrets.token_hex(2))
            log(f"import CSV: {import_rows} rows, {len(data) / 1_048_576:.0f} MB")
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
                    media_list_id=None,
                )
                job_id = job.id
                job.status = ImportStatus.QUEUED
                job.queued_at = utcnow()
            del data
            log(f"import dry run: {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            done = imports.run_import_job(db, job_id, settings=settings)
            results["import"] = time.perf_counter() - started
            if done is None or done.status != ImportStatus.SUCCEEDED:
                raise SystemExit(f"import failed: {done.error_message if done else 'no job'}")
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            log(
                f"import: {done.created_count} created in {results['import']:.1f} s "
                f"(this process peaked at {peak:.0f} MB RSS)"
            )
        log(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    finally:
        engine.dispose()
        if args.keep:
            log(f"database {name} kept")
        else:
            drop_database(server, name)
            log(f"database {name} dropped")
    print(
        f"audience: {journalists} journalists, breakdown {results['breakdown']:.0f} ms, "
        f"list {results['list']:.0f} ms, export {results['export']:.0f} rows/s, "
        f"import {results['import']:.0f} s",
        flush=True,
    )
    return 0


def _ok(response: object) -> None:
    status = getattr(response, "status_code", 0)
    assert status == 200, status


if __name__ == "__main__":
    raise SystemExit(main())
