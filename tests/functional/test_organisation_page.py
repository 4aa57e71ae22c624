"""The admin's Organisation page and where its values show: newsroom and mail (issue 11)."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy import delete
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.delivery.rendering import compile_release, staff_recipient
from distributor.organisation.models import Organisation
from distributor.organisation.services import ensure_organisation
from distributor.releases.models import ReleaseStatus
from distributor.settings import Settings
from tests.support import delivery_factories as f
from tests.support.forms import csrf_token
from tests.support.releases import image_bytes, make_release


def _form(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "Estuary Trust",
        "tagline": "Looking after the estuary since 1998.",
        "website_url": "https://estuary.example",
        "press_email": "media@estuary.example",
        "postal_address": "2 Mill Lane, Portmere PM2 1AA, United Kingdom",
        "timezone": "Europe/Dublin",
        "brand_colour": "#7a2e8c",
        "boilerplate": "The Estuary Trust protects tidal habitats.\n\nIt has 4,000 members.",
        "social_links": "https://www.linkedin.com/company/estuary\nhttps://social.example/@estuary",
    }
    data.update(overrides)
    return data


def test_environment_values_are_only_first_run_defaults(
    session: Session, settings: Settings
) -> None:
    # First run: no organisation row yet (another test's committed one is gone with this
    # test's savepoint).
    session.execute(delete(Organisation))
    org = ensure_organisation(session, settings)
    assert org.name == settings.org_name and org.press_email == settings.press_email
    assert org.brand_colour == "#0d5b74" and org.boilerplate == ""


def test_only_admins_edit_the_organisation(
    client: FlaskClient, logged_in: Callable[[Role], User]
) -> None:
    logged_in(Role.EDITOR)
    assert client.get("/staff/organisation").status_code == 403


def test_admin_saves_identity_and_the_newsroom_and_mail_use_it(
    client: FlaskClient,
    logged_in: Callable[[Role], User],
    session: Session,
    settings: Settings,
) -> None:
    logged_in(Role.ADMIN)
    token = csrf_token(client, "/staff/organisation")
    logo = (io.BytesIO(image_bytes(400, 120)), "logo.png")
    response = client.post(
        "/staff/organisation",
        data={"csrf_token": token, "logo": logo, **_form()},
        content_type="multipart/form-data",
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    session.expire_all()
    org = ensure_organisation(session, settings)
    assert org.name == "Estuary Trust" and org.timezone == "Europe/Dublin"
    assert org.logo_key and org.brand_colour == "#7a2e8c"

    home = client.get("/").get_data(as_text=True)
    assert "Estuary Trust" in home and "Looking after the estuary" in home
    assert f"/media/logos/{org.logo_key}.png" in home
    assert ">LinkedIn</a>" in home and ">Mastodon (social.example)</a>" in home
    logo_response = client.get(f"/media/logos/{org.logo_key}.png")
    assert logo_response.status_code == 200 and logo_response.mimetype == "image/png"
    assert "--brand: #7a2e8c" in client.get("/brand.css").get_data(as_text=True)

    release = f.release(session)
    session.commit()
    compiled = compile_release(session, release.id, settings)
    raw = compiled.message_for(staff_recipient(email="a@example.org", name="A", label="test"))[2]
    text = raw.replace(b"=\r\n", b"").decode("ascii", "replace")
    assert "Notes to editors" in text and "The Estuary Trust protects tidal habitats." in text
    assert f"/media/logos/{org.logo_key}.png" in text


@pytest.mark.usefixtures("settings")
def test_a_file_that_is_not_an_image_is_refused_as_a_logo(
    client: FlaskClient, logged_in: Callable[[Role], User], session: Session
) -> None:
    logged_in(Role.ADMIN)
    token = csrf_token(client, "/staff/organisation")
    response = client.post(
        "/staff/organisation",
        data={"csrf_token": token, "logo": (io.BytesIO(b"not an image"), "logo.png"), **_form()},
        content_type="multipart/form-data",
    )
    page = response.get_data(as_text=True)
    assert "not an image we can read" in page
    session.expire_all()
    assert session.query(Organisation).one().name != "Estuary Trust"  # nothing half-saved


@pytest.mark.usefixtures("session")
def test_spokespeople_are_added_with_photo_and_shown_on_the_newsroom_home(
    client: FlaskClient, logged_in: Callable[[Role], User]
) -> None:
    logged_in(Role.ADMIN)
    token = csrf_token(client, "/staff/organisation")
    response = client.post(
        "/staff/organisation/spokespeople",
        data={
            "csrf_token": token,
            "person-name": "Maeve Okafor",
            "person-title": "Director of communications",
            "person-email": "maeve@estuary.example",
            "person-phone": "+44 20 7946 0111",
            "person-photo": (io.BytesIO(image_bytes(400, 400)), "maeve.jpg"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 303
    home = client.get("/").get_data(as_text=True)
    assert "Spokespeople" in home and "Maeve Okafor" in home and "tel:+442079460111" in home
    assert 'data-testid="subscribe-cta"' in home and "Get our releases by email" in home


def test_a_featured_release_is_pinned_to_the_newsroom_home(
    client: FlaskClient, logged_in: Callable[[Role], User], session: Session
) -> None:
    old = make_release(session, title="Older news to pin", status=ReleaseStatus.APPROVED)
    make_release(session, title="Newest news", status=ReleaseStatus.APPROVED)
    session.commit()
    logged_in(Role.EDITOR)
    token = csrf_token(client, f"/staff/releases/{old.id}")
    client.post(f"/staff/releases/{old.id}/feature", data={"csrf_token": token, "featured": "1"})
    home = client.get("/").get_data(as_text=True)
    featured = home.index('id="featured-h"')
    assert featured < home.index("Older news to pin") < home.index("Newest news")
    assert home.count("Older news to pin") == 1  # not listed twice
    # Filtering shows the plain list, with the tabs as links (no button, no script needed).
    filtered = client.get("/?kind=press-release").get_data(as_text=True)
    assert 'id="featured-h"' not in filtered
    assert 'href="/?kind=press-release" aria-current="page"' in filtered
