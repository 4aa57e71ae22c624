"""``make bench-reports``: the release report and the 30-day dashboard at 1M deliveries.

Creates a throwaway PostgreSQL database (server from DATABASE_URL), migrates it and seeds, with
set-based statements (``generate_series``), ``--releases`` sent releases to ``--journalists``
journalists each (1M deliveries by default), spread over ``--days`` days: mostly accepted,
some refused with real SMTP replies, deferred, in the digest or in doubt; bounce reports,
complaints, unsubscribes, and human and machine opens and clicks. Then it runs the release
report of a release in the middle of the window and the 30-day dashboard ``--rounds`` times
each, through the same service functions the pages and the API call, and prints the medians.
``--explain`` prints the plans of the main statements. The last line is:

    reports: <N> deliveries, release report <R> ms, dashboard <D> ms
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from benchmarks.throwaway_db import create_database, drop_database  # noqa: E402
from distributor.db import (  # noqa: E402
    Database,
    make_engine,
    utcnow,
)
from distributor.migrate import upgrade  # noqa: E402
from distributor.reports import health, services  # noqa: E402
from distributor.reports.rollup import count_settled_sends  # noqa: E402
from distributor.settings import Settings  # noqa: E402


def log(message: str) -> None:
    print(f"[bench-reports] {message}", flush=True)


# Replies a refused delivery holds (the outcome authority reads them at report time).
REPLIES = [
    (550, "5.1.1 <x@example.org>: Recipient address rejected: User unknown"),
    (552, "5.3.4 Message size exceeds fixed maximum message size"),
    (550, "5.7.1 Message rejected due to local policy"),
    (452, "4.2.2 Mailbox full"),
    (553, "5.3.0 Unknown user"),
]

SEED = [
    # Journalists, one outlet in twenty, one beat each.
    """
    INSERT INTO outlets (name, website, country)
    SELECT 'Outlet ' || g, '', '' FROM generate_series(1, 20) g
    """,
    """
    INSERT INTO beats (name, slug, description, is_public, created_at)
    SELECT 'Beat ' || g, 'beat-' || g, '', true, now() FROM generate_series(1, 8) g
    """,
    """
    INSERT INTO journalists (email, email_normalized, name, outlet_id, role, country, language,
        phone, notes, delivery_mode, is_paused, is_tracking_allowed, lawful_basis,
        created_at, updated_at)
    SELECT 'j' || g || '@outlet' || (g % 20) || '.example',
           'j' || g || '@outlet' || (g % 20) || '.example',
           'Journalist ' || g, 1 + g % 20, '', '', '', '', '',
           CASE WHEN g % 50 = 0 THEN 'daily_digest' ELSE 'each_release' END,
           false, true, 'consent', now(), now()
    FROM generate_series(1, :journalists) g
    """,
    # One subscription each; one journalist in a hundred unsubscribed at some point.
    """
    INSERT INTO subscriptions (journalist_id, beat_id, status, source, consent_method,
        consent_text_version, created_at, unsubscribed_at)
    SELECT j.id, 1 + j.id % 8,
           CASE WHEN j.id % 100 = 7 THEN 'unsubscribed' ELSE 'confirmed' END,
           'import', '', '', now() - interval '400 days',
           CASE WHEN j.id % 100 = 7
                THEN now() - make_interval(secs => (j.id * 7919) % (:days * 86400)) END
    FROM journalists j
    """,
    """
    INSERT INTO releases (kind_id, title, slug, summary, body_markdown, body_html, status,
        preview_token, photo_alt, photo_credit, photo_caption, campaign_tags, created_at,
        updated_at, published_at)
    SELECT (SELECT min(id) FROM release_kinds), 'Release ' || g, 'release-' || g, '', '', '',
           'sent', md5('p' || g), '', '', '', '',
           now() - make_interval(days => :days) * (1 - (g - 1)::float / :releases),
           now(), now() - make_interval(days => :days) * (1 - (g - 1)::float / :releases)
    FROM generate_series(1, :releases) g
    """,
    """
    INSERT INTO sends (release_id, status, started_at, finished_at, recipient_count, created_at)
    SELECT id, 'finished', published_at, published_at + interval '1 hour', :journalists,
           published_at
    FROM releases
    """,
    # Every release goes to every journalist: statuses by a hash of the pair.
    """
    INSERT INTO deliveries (send_id, release_id, journalist_id, email, recipient_domain, status,
        matched_beats, matched_lists, attempts, first_attempt_at, sent_at, verp_token,
        smtp_code, smtp_response, is_policy_rejection, created_at, updated_at)
    SELECT s.id, s.release_id, j.id, j.email, split_part(j.email, '@', 2),
           CASE WHEN j.delivery_mode = 'daily_digest' THEN 'sent'
                WHEN h < 940 THEN 'sent' WHEN h < 965 THEN 'failed'
                WHEN h < 975 THEN 'deferred' WHEN h < 980 THEN 'unknown'
                ELSE 'sent' END,
           'Beat ' || (1 + j.id % 8), '', 1, s.started_at,
           CASE WHEN h < 940 OR h >= 980 OR j.delivery_mode = 'daily_digest'
                THEN s.started_at + make_interval(secs => h * 3) END,
           md5(s.id || '-' || j.id),
           CASE WHEN h >= 940 AND h < 965 THEN (ARRAY[550, 552, 550, 452, 553])[1 + h % 5]
                ELSE 250 END,
           CASE WHEN h >= 940 AND h < 965 THEN (ARRAY[:r0, :r1, :r2, :r3, :r4])[1 + h % 5]
                ELSE '2.0.0 Ok' END,
           false, s.started_at, s.started_at
    FROM sends s
    CROSS JOIN journalists j
    CROSS JOIN LATERAL (SELECT (j.id * 7919 + s.id * 104729) % 1000 AS h) x
    ORDER BY s.id, j.id  -- a send freezes its recipients in one statement, so they sit together
    """,
    # Bounce reports for 2% of accepted messages, complaints for 0.05%.
    """
    INSERT INTO inbound_messages (source, dedupe_key, envelope_from, envelope_to, subject, size,
        classification, summary, received_at, processed_at)
    SELECT 'smtp', 'b-' || d.id, '', '', '', 0,
           CASE WHEN d.id % 2000 = 3 THEN 'complaint' ELSE 'bounce' END, '',
           d.sent_at + interval '10 minutes', d.sent_at + interval '10 minutes'
    FROM deliveries d
    WHERE d.sent_at IS NOT NULL AND (d.id % 50 = 1 OR d.id % 2000 = 3)
    """,
    """
    INSERT INTO bounces (inbound_message_id, delivery_id, email, kind, status_code, action,
        diagnostic, remote_mta, matched_by, is_suppressing, received_at)
    SELECT m.id, d.id, d.email, CASE WHEN d.id % 3 = 0 THEN 'hard' ELSE 'soft' END,
           CASE WHEN d.id % 3 = 0 THEN '5.1.1' ELSE '4.2.2' END, 'failed', '', '', 'verp',
           false, m.received_at
    FROM inbound_messages m JOIN deliveries d ON m.dedupe_key = 'b-' || d.id
    WHERE m.classification = 'bounce'
    """,
    """
    INSERT INTO complaints (inbound_message_id, delivery_id, email, feedback_type, user_agent,
        matched_by, is_suppressing, received_at)
    SELECT m.id, d.id, d.email, 'abuse', '', 'verp', false, m.received_at
    FROM inbound_messages m JOIN deliveries d ON m.dedupe_key = 'b-' || d.id
    WHERE m.classification = 'complaint'
    """,
    # Opens and clicks: machines for a quarter of messages, people for a third.
    """
    INSERT INTO tracking_events (event_uid, delivery_id, release_id, journalist_id, kind,
        occurred_at, method, user_agent, is_machine, machine_reason, classified_at, created_at)
    SELECT md5(d.id || '-' || e.n), d.id, d.release_id, d.journalist_id,
           CASE WHEN e.n = 3 THEN 'click' ELSE 'open' END,
           d.sent_at + make_interval(mins => e.n * 30 + d.id % 600), 'GET', '',
           e.n = 1, CASE WHEN e.n = 1 THEN 'apple_mpp' ELSE '' END, d.sent_at, d.sent_at
    FROM deliveries d
    CROSS JOIN (VALUES (1), (2), (3)) e(n)
    WHERE d.sent_at IS NOT NULL
      AND ((e.n = 1 AND d.id % 4 = 0) OR (e.n = 2 AND d.id % 3 = 0) OR (e.n = 3 AND d.id % 9 = 0))
    ORDER BY d.release_id, e.n, d.id  -- events arrive in the days after each send
    """,
]


def seed(url: str, *, releases: int, journalists: int, days: int) -> int:
    engine = make_engine(url, pool=False)
    params: dict[str, object] = {"releases": releases, "journalists": journalists, "days": days}
    params.update({f"r{i}": reply for i, (_, reply) in enumerate(REPLIES)})
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO release_kinds (name, slug, position) VALUES ('Press release', 'press', 0)"
            )
        )
        for statement in SEED:
            started = time.perf_counter()
            conn.execute(text(statement), params)
            log(f"  {statement.split()[2]} in {time.perf_counter() - started:.1f} s")
        # The digest readers of the newest release are still waiting for their digest.
        conn.execute(
            text(
                "UPDATE deliveries d SET status = 'digest', sent_at = NULL FROM journalists j "
                "WHERE j.id = d.journalist_id AND j.delivery_mode = 'daily_digest' "
                "AND d.release_id = (SELECT max(id) FROM releases)"
            )
        )
        count = int(conn.execute(text("SELECT count(*) FROM deliveries")).scalar_one())
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))  # what autovacuum does after a send
    engine.dispose()
    return count


def timed(rounds: int, run: Callable[[], object]) -> float:
    run()  # warm the caches, as a page served before would have
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def explain(session: Session, release_id: int) -> None:
    from sqlalchemy import func, select

    from distributor.reports import definitions as d

    facts = d.delivery_facts(session, d.Scope.releases([release_id]))
    since = utcnow() - dt.timedelta(days=30)
    live = select(func.count()).where(health.live_deliveries(session, since))
    for title, statement in [
        ("release report figures", select(*d.figure_sums(facts))),
        ("dashboard: deliveries of unsettled sends", live),
    ]:
        compiled = statement.compile(
            dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}
        )
        plan = session.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}")).scalars().all()
        print(f"-- {title}\n" + "\n".join(plan))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=100)
    parser.add_argument("--journalists", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=60, help="the sends are spread over these")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    args = parser.parse_args()

    server = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    if not server.startswith(("postgres://", "postgresql")):
        sys.exit("bench-reports needs a PostgreSQL DATABASE_URL")
    url, name = create_database(server, "distributor_bench_reports")
    log(f"database {name}")
    try:
        settings = Settings(database_url=url)
        engine = make_engine(settings.sqlalchemy_url)
        with engine.begin() as conn:
            upgrade(settings.sqlalchemy_url, conn)
        started = time.perf_counter()
        count = seed(
            settings.sqlalchemy_url,
            releases=args.releases,
            journalists=args.journalists,
            days=args.days,
        )
        log(f"seeded {count} deliveries in {time.perf_counter() - started:.1f} s")
        db = Database(engine)
        with db.session() as session:
            # What the beat sweep does every ten minutes: count the sends that settled.
            started = time.perf_counter()
            counted = 0
            while batch := count_settled_sends(session, now=utcnow(), limit=50):
                counted += batch
            session.commit()
            log(f"counted {counted} settled sends in {time.perf_counter() - started:.1f} s")
            # A release sent in the middle of the dashboard's window.
            release_id = int(
                session.execute(
                    text(
                        "SELECT release_id FROM sends WHERE started_at > now() - interval "
                        "'15 days' ORDER BY started_at LIMIT 1"
                    )
                ).scalar_one()
            )
            if args.explain:
                d_ = session.connection()
                d_.exec_driver_sql("SET jit = off")  # as the reports do
                explain(session, release_id)
            report_ms = timed(args.rounds, lambda: services.release_report(session, release_id))
            board_ms = timed(args.rounds, lambda: health.dashboard(session))
            board = health.dashboard(session)
            totals = services.release_totals(session, release_id)
        log(
            f"release {release_id}: {totals['recipients']} recipients, {totals['sent']} sent, "
            f"{totals['bounced_hard']} hard bounces; dashboard: {board.sent} sent in 30 days"
        )
        engine.dispose()
    finally:
        if not args.keep:
            drop_database(server, name)
    print(
        f"reports: {count} deliveries, release report {report_ms:.0f} ms, "
        f"dashboard {board_ms:.0f} ms"
    )


if __name__ == "__main__":
    main()
