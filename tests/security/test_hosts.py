"""Finding 10: absolute URLs come from PUBLIC_BASE_URL, never the Host header; TRUSTED_HOSTS."""

from __future__ import annotations

import dataclasses

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from distributor.app import create_app
from distributor.db import Database
from distributor.mail.transport import InMemoryTransport
from distributor.releases.models import ReleaseStatus
from distributor.settings import Settings
from tests.support.releases import make_release

EVIL = "cache-poison.example"


def test_no_host_reflection_in_cacheable_public_documents(
    client: FlaskClient, session: Session, settings: Settings
) -> None:
    release = make_release(session, status=ReleaseStatus.APPROVED)
    session.commit()
    paths = ["/sitemap.xml", "/feed.atom", "/robots.txt", f"/releases/{release.slug}", "/"]
    for path in paths:
        response = client.get(path, headers={"Host": EVIL})
        assert response.status_code == 200, path
        body = response.get_data(as_text=True)
        assert EVIL not in body, path
    page = client.get(f"/releases/{release.slug}", headers={"Host": EVIL}).get_data(as_text=True)
    assert (
        f'<link rel="canonical" href="{settings.public_base_url}/releases/{release.slug}"' in page
    )
    assert f"Sitemap: {settings.public_base_url}/sitemap.xml" in client.get(
        "/robots.txt", headers={"Host": EVIL}
    ).get_data(as_text=True)


def test_trusted_hosts_refuse_other_hosts(settings: Settings, db: Database) -> None:
    app = create_app(
        dataclasses.replace(settings, trusted_hosts="news.example.org"),
        db=db,
        mail_transport=InMemoryTransport(),
    )
    client = app.test_client()
    assert client.get("/login", headers={"Host": EVIL}).status_code == 400
    assert client.get("/login", headers={"Host": "news.example.org"}).status_code == 200
    assert client.get("/healthz", headers={"Host": "10.0.0.5:8000"}).status_code != 400


def test_production_trusts_the_public_host_by_default(settings: Settings) -> None:
    production = dataclasses.replace(
        settings, env="production", public_base_url="https://news.example.org"
    )
    assert production.trusted_host_list == ["news.example.org"]
