"""``make bench-newsroom``: the public newsroom list page with many releases on PostgreSQL.

Creates a throwaway PostgreSQL database on the server named by DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/postgres), migrates it, seeds ``--releases`` releases
(mostly published, some drafts, embargoed and withdrawn; one to three beats each; a Markdown
body for search), then requests the newsroom list through the real Flask app (test client, the
whole request cycle: routing, access policy, session, query, template) across several pages and
filters. Drops the database afterwards and prints, as its last line:

    newsroom: median <M> ms, p99 <P> ms at <N> releases
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from distributor.app import create_app  # noqa: E402
from distributor.audience.models import Beat  # noqa: E402
from distributor.db import Database, make_engine, utcnow  # noqa: E402
from distributor.mail.transport import InMemoryTransport  # noqa: E402
from distributor.migrate import upgrade  # noqa: E402
from distributor.organisation.services import ensure_organisation  # noqa: E402
from distributor.releases.models import (  # noqa: E402
    Release,
    ReleaseKind,
    ReleaseStatus,
    release_beats,
)
from distributor.releases.services import DEFAULT_KINDS, render_markdown, slugify  # noqa: E402
from distributor.settings import Settings  # noqa: E402

BEATS = ["climate", "coastal-communities", "fisheries", "housing", "health", "policy"]
WORDS = [
    "harbour",
    "tide",
    "flood",
    "surge",
    "estuary",
    "saltmarsh",
    "quay",
    "skipper",
    "catch",
    "fishers",
    "homes",
    "rent",
    "keyworker",
    "clinic",
    "ferry",
    "island",
    "council",
    "funding",
    "erosion",
    "cliff",
    "seawall",
    "energy",
    "solar",
    "co-op",
    "survey",
    "report",
    "winter",
    "storm",
    "warning",
    "volunteers",
    "school",
    "gauges",
    "boats",
    "crew",
    "lifeboat",
    "apprentices",
    "data",
    "coast",
    "village",
    "community",
    "resilience",
    "adaptation",
    "grant",
    "retrofit",
    "damp",
    "mould",
    "health",
    "outreach",
]


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def seed(url: str, count: int) -> None:
    engine = make_engine(url, pool=False)
    with engine.begin() as conn:
        upgrade(url, conn)
    db = Database(engine)
    rng = random.Random(42)
    settings = Settings(database_url=url)
    now = utcnow()
    with db.session() as session, session.begin():
        ensure_organisation(session, settings)
        for position, name in enumerate(DEFAULT_KINDS):
            session.add(ReleaseKind(name=name, slug=slugify(name), position=position))
        for slug in BEATS:
            session.add(Beat(slug=slug, name=slug.replace("-", " ").capitalize()))
    with engine.begin() as conn:
        kind_ids = [r[0] for r in conn.execute(text("SELECT id FROM release_kinds"))]
        beat_ids = [r[0] for r in conn.execute(text("SELECT id FROM beats"))]
        body_html_cache: dict[int, str] = {}
        batch: list[dict[str, object]] = []
        links: list[dict[str, int]] = []
        next_id = 1
        for i in range(count):
            roll = rng.random()
            published_at: dt.datetime | None = now - dt.timedelta(
                minutes=rng.randint(1, 3 * 525_600)
            )
            embargo: dt.datetime | None = None
            status = ReleaseStatus.SENT if rng.random() < 0.6 else ReleaseStatus.APPROVED
            if roll < 0.05:
                status, published_at = ReleaseStatus.DRAFT, None
            elif roll < 0.07:
                status = ReleaseStatus.IN_REVIEW
                published_at = None
            elif roll < 0.08:
                embargo, published_at = now + dt.timedelta(days=rng.randint(1, 10)), None
            elif roll < 0.09:
                status = ReleaseStatus.WITHDRAWN
            title = _text(rng, 9).capitalize()
            body = "\n\n".join(_text(rng, 60) for _ in range(4))
            key = i % 50
            if key not in body_html_cache:
                body_html_cache[key] = render_markdown(body)
            batch.append(
                {
                    "id": next_id,
                    "kind_id": rng.choice(kind_ids),
                    "title": title,
                    "slug": f"{slugify(title)}-{i}",
                    "summary": _text(rng, 30),
                    "body_markdown": body,
                    "body_html": body_html_cache[key],
                    "status": status,
                    "embargo_until": embargo,
                    "published_at": published_at,
                    "photo_key": secrets.token_hex(12) if rng.random() < 0.7 else None,
                    "photo_credit": "Bench Photographer",
                    "photo_alt": "A bench photo",
                    "photo_caption": "",
                    "campaign_tags": "",
                    "preview_token": secrets.token_urlsafe(32),
                    "created_at": now,
                    "updated_at": now,
                }
            )
            for beat_id in rng.sample(beat_ids, rng.randint(1, 3)):
                links.append({"release_id": next_id, "beat_id": beat_id})
            next_id += 1
            if len(batch) >= 1000:
                conn.execute(insert(Release), batch)
                conn.execute(insert(release_beats), links)
                batch, links = [], []
        if batch:
            conn.execute(insert(Release), batch)
            conn.execute(insert(release_beats), links)
        conn.execute(text("SELECT setval('releases_id_seq', (SELECT max(id) FROM releases))"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()


PATHS = [
    "/",
    "/?page=2",
    "/?page=40",
    "/?kind=report",
    "/?beat=fisheries",
    "/?beat=housing&kind=update",
    "/?q=harbour",
    "/?q=flood+defences",
    "/?q=saltmarsh+-ferry&beat=climate",
]


def measure(url: str, rounds: int) -> list[float]:
    data_dir = tempfile.mkdtemp(prefix="bench-newsroom-")
    settings = Settings(
        env="test",
        secret_key="bench-secret-key-long-enough-0123456789",
        database_url=url,
        data_dir=data_dir,
        log_level="WARNING",
    )
    app = create_app(
        settings,
        db=Database(make_engine(settings.sqlalchemy_url)),
        mail_transport=InMemoryTransport(),
    )
    client = app.test_client()
    for path in PATHS:  # warm up: connection pool, template cache, plans
        for _ in range(3):
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)
    timings: list[float] = []
    for _ in range(rounds):
        for path in PATHS:
            started = time.perf_counter()
            response = client.get(path)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
    per_path = {p: statistics.median(timings[i :: len(PATHS)]) for i, p in enumerate(PATHS)}
    for path, ms in per_path.items():
        print(f"  {path:40s} median {ms:6.1f} ms")
    app.extensions["distributor.db"].engine.dispose()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", "-n", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    server = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    base = make_url(Settings(database_url=server).sqlalchemy_url)
    if base.get_backend_name() != "postgresql":
        sys.exit("bench-newsroom needs a PostgreSQL DATABASE_URL")
    name = f"distributor_bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(base.render_as_string(hide_password=False), pool=False)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        started = time.perf_counter()
        seed(url, args.releases)
        print(f"seeded {args.releases} releases in {time.perf_counter() - started:.1f} s")
        timings = measure(url, args.rounds)
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    timings.sort()
    median = statistics.median(timings)
    p99 = timings[min(len(timings) - 1, round(0.99 * (len(timings) - 1)))]
    print(f"newsroom: median {median:.1f} ms, p99 {p99:.1f} ms at {args.releases} releases")


if __name__ == "__main__":
    main()
