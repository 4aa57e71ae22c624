"""The admin's Organisation page: identity, contacts and spokespeople in one place."""

from __future__ import annotations

import re

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    url_for,
)
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers import Response

from distributor.db import request_session
from distributor.errors import DomainError
from distributor.organisation import services
from distributor.organisation.forms import OrganisationForm, RemoveForm, SpokespersonForm
from distributor.organisation.media import logo_key
from distributor.organisation.models import DEFAULT_BRAND_COLOUR
from distributor.security import admin_required, public
from distributor.settings import current_settings
from distributor.storage import app_storage, stored_response

bp = Blueprint("organisation", __name__)

_LOGO_NAME = re.compile(r"([0-9a-f]{24})\.png")


def _upload(field: object) -> FileStorage | None:
    data = getattr(field, "data", None)
    return data if isinstance(data, FileStorage) and data.filename else None


@bp.route("/staff/organisation", methods=["GET", "POST"])
@admin_required
def edit() -> str | Response:
    session = request_session()
    org = services.ensure_organisation(session, current_settings())
    form = OrganisationForm(obj=org)
    if form.validate_on_submit():
        logo = _upload(form.logo)
        try:
            services.update_organisation(
                session,
                current_settings(),
                services.OrganisationInput(
                    name=form.name.data or "",
                    tagline=form.tagline.data or "",
                    website_url=form.website_url.data or "",
                    press_email=form.press_email.data or "",
                    postal_address=form.postal_address.data or "",
                    timezone=form.timezone.data or "",
                    brand_colour=form.brand_colour.data or "",
                    boilerplate=form.boilerplate.data or "",
                    social_links=form.social_links.data or "",
                ),
                storage=app_storage(),
                logo=logo.stream if logo else None,
                remove_logo=bool(form.remove_logo.data),
            )
        except DomainError as exc:
            session.rollback()
            flash(exc.message, "error")
        else:
            flash("Organisation saved. The newsroom and new mail use it now.", "success")
            return redirect(url_for("organisation.edit"), 303)
    return render_template(
        "staff/organisation/edit.html",
        org=org,
        form=form,
        person_form=SpokespersonForm(prefix="person"),
        remove_form=RemoveForm(),
    )


@bp.post("/staff/organisation/spokespeople")
@admin_required
def add_spokesperson() -> Response:
    session = request_session()
    form = SpokespersonForm(prefix="person")
    if not form.validate_on_submit():
        errors = [e for f in form for e in f.errors]
        flash("Spokesperson not added: " + " ".join(str(e) for e in errors), "error")
        return redirect(url_for("organisation.edit") + "#spokespeople", 303)
    photo = _upload(form.photo)
    try:
        person = services.add_spokesperson(
            session,
            current_settings(),
            name=form.name.data or "",
            title=form.title.data or "",
            email=form.email.data or "",
            phone=form.phone.data or "",
            storage=app_storage(),
            photo=photo.stream if photo else None,
        )
    except DomainError as exc:
        session.rollback()
        flash(exc.message, "error")
    else:
        flash(f"{person.name} added to the newsroom's spokespeople.", "success")
    return redirect(url_for("organisation.edit") + "#spokespeople", 303)


@bp.post("/staff/organisation/spokespeople/<int:spokesperson_id>/remove")
@admin_required
def remove_spokesperson(spokesperson_id: int) -> Response:
    if not RemoveForm().validate_on_submit():
        abort(400)
    services.remove_spokesperson(request_session(), app_storage(), spokesperson_id)
    flash("Spokesperson removed.", "success")
    return redirect(url_for("organisation.edit") + "#spokespeople", 303)


@bp.get("/media/logos/<name>")
@public
def logo(name: str) -> Response:
    """The logo by its random key: a new upload gets a new URL, so it may be cached forever."""
    match = _LOGO_NAME.fullmatch(name)
    if match is None:
        abort(404)
    response: Response = stored_response(
        app_storage(),
        logo_key(match.group(1)),
        "image/png",
        cache="public, max-age=31536000, immutable",
    )
    return response


@bp.get("/brand.css")
@public
def brand_css() -> Response:
    """The brand colour as a CSS variable: a stylesheet, so no inline style is needed (CSP)."""
    org = services.get_organisation(request_session(), current_settings())
    colour = org.brand_colour or DEFAULT_BRAND_COLOUR
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", colour):
        colour = DEFAULT_BRAND_COLOUR
    body = f":root {{ --brand: {colour}; }}\n"
    response = current_app.response_class(body, mimetype="text/css")
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.app_template_global()
def org_display_name() -> str:
    """The organisation's name for staff pages; the settings' name if the database is down
    (error pages must still render)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return services.get_organisation(request_session(), current_settings()).name
    except SQLAlchemyError:
        return current_settings().org_name
