"""The public newsroom: listing, filters, search, permalinks, feeds, sitemap, embargo, preview."""

from __future__ import annotations

import datetime as dt
import io
import xml.etree.ElementTree as ET

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from distributor.db import utcnow
from distributor.releases import media, services
from distributor.releases.models import ReleaseStatus
from distributor.settings import Settings
from distributor.storage import storage_for
from tests.support.releases import beat, image_bytes, make_release

ATOM = "{http://www.w3.org/2005/Atom}"


def _feed_titles(client: FlaskClient, path: str = "/feed.atom") -> list[str]:
    response = client.get(path)
    assert response.status_code == 200
    assert response.content_type.startswith("application/atom+xml")
    root = ET.fromstring(response.data)
    return [e.findtext(f"{ATOM}title") or "" for e in root.iter(f"{ATOM}entry")]


def _visible_everywhere(client: FlaskClient, title: str, slug: str, word: str) -> list[bool]:
    return [
        title in client.get("/").get_data(as_text=True),
        title in _feed_titles(client),
        slug in client.get("/sitemap.xml").get_data(as_text=True),
        title in client.get(f"/?q={word}").get_data(as_text=True),
        title in client.get(f"/releases/{slug}").get_data(as_text=True),
    ]


def test_published_releases_are_listed_newest_first_with_kind_and_date(
    client: FlaskClient, session: Session
) -> None:
    now = utcnow()
    make_release(
        session, title="Older item", status=ReleaseStatus.APPROVED, now=now - dt.timedelta(days=2)
    )
    make_release(
        session, title="Newer item", kind_name="Report", status=ReleaseStatus.SENT, now=now
    )
    make_release(session, title="Unreviewed item", status=ReleaseStatus.IN_REVIEW)
    make_release(session, title="Withdrawn item", status=ReleaseStatus.WITHDRAWN)
    session.commit()
    page = client.get("/").get_data(as_text=True)
    assert page.index("Newer item") < page.index("Older item")
    assert "Unreviewed item" not in page and "Withdrawn item" not in page
    assert "Report" in page
    assert '<main id="main"' in page and 'role="banner"' in page and "press@" in page


def test_an_embargoed_release_stays_hidden_until_the_sweep_after_the_lift(
    client: FlaskClient, session: Session
) -> None:
    now = utcnow()
    release = make_release(
        session,
        title="Harbour plan embargoed",
        body="A plan for the breakwater.",
        status=ReleaseStatus.APPROVED,
        embargo_until=now + dt.timedelta(hours=3),
        now=now,
    )
    session.commit()
    assert _visible_everywhere(client, release.title, release.slug, "breakwater") == [False] * 5

    # The clock moves past the lift: nothing shows until the sweep publishes it.
    release.embargo_until = now - dt.timedelta(minutes=1)
    session.commit()
    assert _visible_everywhere(client, release.title, release.slug, "breakwater") == [False] * 5
    assert services.publish_due_embargoes(session, utcnow()) == [release.id]
    session.commit()
    assert _visible_everywhere(client, release.title, release.slug, "breakwater") == [True] * 5


def test_an_embargoed_permalink_says_when_it_lifts_and_shows_nothing_of_the_release(
    client: FlaskClient, session: Session
) -> None:
    lift = utcnow() + dt.timedelta(days=2)
    release = make_release(
        session,
        title="Breakwater contract awarded",
        body="The winning bid is secret until the lift.",
        status=ReleaseStatus.APPROVED,
        embargo_until=lift,
    )
    session.commit()
    response = client.get(f"/releases/{release.slug}")
    assert response.status_code == 200
    assert response.headers["X-Robots-Tag"] == "noindex"
    page = response.get_data(as_text=True)
    assert "This release is under embargo until" in page
    assert lift.strftime("%-d %B %Y, %H:%M") + " UTC" in page
    assert "Breakwater contract" not in page and "winning bid" not in page
    # A withdrawn or unknown release is still simply not found.
    assert client.get("/releases/no-such-release").status_code == 404


def test_the_preview_link_works_before_publication_with_an_embargo_banner(
    client: FlaskClient, session: Session, settings: Settings
) -> None:
    release = make_release(
        session,
        title="Secret plan",
        status=ReleaseStatus.APPROVED,
        embargo_until=utcnow() + dt.timedelta(days=1),
    )
    attachment = media.add_attachment(
        session, release, io.BytesIO(b"%PDF-1.4 plan"), "plan.pdf", storage_for(settings)
    )
    session.commit()
    response = client.get(f"/preview/{release.preview_token}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "EMBARGOED UNTIL" in page and "Secret plan" in page
    assert '<meta name="robots" content="noindex, nofollow">' in page
    assert response.headers["X-Robots-Tag"] == "noindex, nofollow"
    assert client.get(f"/preview/{release.preview_token[:-2]}xx").status_code == 404

    public_url = f"/releases/{release.slug}/attachments/{attachment.id}/plan.pdf"
    assert client.get(public_url).status_code == 404
    preview_url = f"/preview/{release.preview_token}/attachments/{attachment.id}/plan.pdf"
    download = client.get(preview_url)
    assert download.status_code == 200
    assert download.data == b"%PDF-1.4 plan"


def test_attachments_of_a_published_release_are_served_with_their_type(
    client: FlaskClient, session: Session, settings: Settings
) -> None:
    release = make_release(session, status=ReleaseStatus.APPROVED)
    pdf = media.add_attachment(
        session, release, io.BytesIO(b"%PDF-1.4 x"), "Report.pdf", storage_for(settings)
    )
    session.commit()
    response = client.get(f"/releases/{release.slug}/attachments/{pdf.id}/Report.pdf")
    assert response.status_code == 200
    assert response.content_type == "application/pdf"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert "Report.pdf" in response.headers["Content-Disposition"]
    page = client.get(f"/releases/{release.slug}").get_data(as_text=True)
    assert f"/releases/{release.slug}/attachments/{pdf.id}/Report.pdf" in page
    services.transition(session, release, ReleaseStatus.WITHDRAWN, by=None)
    session.commit()
    assert (
        client.get(f"/releases/{release.slug}/attachments/{pdf.id}/Report.pdf").status_code == 404
    )
    assert client.get(f"/releases/{release.slug}").status_code == 404


def test_the_permalink_page_has_photo_credit_contacts_and_open_graph(
    client: FlaskClient, session: Session, settings: Settings
) -> None:
    release = make_release(session, title="Keyworker homes", status=ReleaseStatus.APPROVED)
    media.set_photo(session, release, io.BytesIO(image_bytes()), storage_for(settings))
    release.photo_alt, release.photo_credit = "Homes by the quay", "Sam Pike"
    release.contacts = [services.save_contact(session, name="Ann Quay", email="ann@example.org")]
    session.commit()
    page = client.get(f"/releases/{release.slug}").get_data(as_text=True)
    assert '<h1 id="release-title">Keyworker homes</h1>' in page
    assert 'alt="Homes by the quay"' in page and "Photo: Sam Pike" in page
    assert "ann@example.org" in page
    assert '<meta property="og:title" content="Keyworker homes">' in page
    assert '<meta property="og:image" content="http://localhost/media/photos/' in page
    photo = client.get(media_url := f"/media/photos/{release.photo_key}-1200.jpg")
    assert photo.status_code == 200 and photo.content_type == "image/jpeg", media_url
    assert client.get(f"/media/photos/{release.photo_key}-999.jpg").status_code == 404


def test_filters_by_kind_and_beat_and_the_beat_feed(client: FlaskClient, session: Session) -> None:
    fish = beat(session, "fisheries", "Fisheries")
    housing = beat(session, "housing", "Housing")
    make_release(
        session,
        title="Catch survey",
        kind_name="Report",
        beats=[fish],
        status=ReleaseStatus.APPROVED,
    )
    make_release(session, title="New homes", beats=[housing], status=ReleaseStatus.APPROVED)
    session.commit()
    by_kind = client.get("/?kind=report").get_data(as_text=True)
    assert "Catch survey" in by_kind and "New homes" not in by_kind
    by_beat = client.get("/?beat=housing").get_data(as_text=True)
    assert "New homes" in by_beat and "Catch survey" not in by_beat
    assert _feed_titles(client, "/beats/fisheries/feed.atom") == ["Catch survey"]
    assert client.get("/beats/nope/feed.atom").status_code == 404


def test_search_finds_words_in_the_body(client: FlaskClient, session: Session) -> None:
    make_release(
        session,
        title="Marsh report",
        body="The saltmarsh recovered quickly.",
        status=ReleaseStatus.APPROVED,
    )
    make_release(
        session, title="Ferry statement", body="Crossings cut.", status=ReleaseStatus.APPROVED
    )
    session.commit()
    page = client.get("/?q=saltmarsh").get_data(as_text=True)
    assert "Marsh report" in page and "Ferry statement" not in page
    assert "noindex" in page


def test_pagination(client: FlaskClient, session: Session) -> None:
    now = utcnow()
    for i in range(14):
        make_release(
            session,
            title=f"Item number {i:02d}",
            status=ReleaseStatus.APPROVED,
            now=now - dt.timedelta(minutes=20 - i),
        )
    session.commit()
    first = client.get("/").get_data(as_text=True)
    assert "Item number 13" in first and "Item number 01" not in first
    assert 'rel="next"' in first
    second = client.get("/?page=2").get_data(as_text=True)
    assert "Item number 01" in second and "Item number 13" not in second
    assert 'rel="prev"' in second


def test_the_sitemap_is_valid_xml(client: FlaskClient, session: Session) -> None:
    release = make_release(session, status=ReleaseStatus.APPROVED)
    session.commit()
    root = ET.fromstring(client.get("/sitemap.xml").data)
    locs = [e.text for e in root.iter("{http://www.sitemaps.org/schemas/sitemap/0.9}loc")]
    assert f"http://localhost/releases/{release.slug}" in locs
