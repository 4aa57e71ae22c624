"""ESP webhook endpoints (public: they authenticate themselves) and the admins' bounce pages."""

from __future__ import annotations

import click
from flask import Blueprint, current_app, jsonify, render_template, request
from flask.blueprints import BlueprintSetupState
from werkzeug.wrappers import Response

from distributor.bounces import services, webhooks
from distributor.bounces.models import InboundMessage
from distributor.db import get_db, request_session, task_session, utcnow
from distributor.errors import NotFound
from distributor.extensions import csrf
from distributor.security import admin_required, public
from distributor.settings import current_settings

bp = Blueprint("bounces", __name__, cli_group="bounces")

CERT_FETCHER = "distributor.sns_cert_fetcher"


@bp.record_once
def _install_cert_fetcher(state: BlueprintSetupState) -> None:
    # The real fetcher only talks to https://sns.<region>.amazonaws.com; tests replace it.
    state.app.extensions.setdefault(CERT_FETCHER, webhooks.HttpsCertificateFetcher())


def _accepted(rows: list[InboundMessage]) -> Response:
    return jsonify(
        status="ok",
        events=[{"id": r.id, "classification": r.classification.value} for r in rows],
    )


# -- webhooks ---------------------------------------------------------------------------------


@bp.post("/webhooks/ses")
@public
@csrf.exempt
def ses_webhook() -> Response:
    row = webhooks.handle_ses(
        request_session(),
        current_settings(),
        request.get_data(cache=False),
        current_app.extensions[CERT_FETCHER],
        now=utcnow(),
    )
    return _accepted([row])


@bp.post("/webhooks/postmark")
@public
@csrf.exempt
def postmark_webhook() -> Response:
    row = webhooks.handle_postmark(
        request_session(),
        current_settings(),
        request.get_data(cache=False),
        request.headers.get("Authorization", ""),
    )
    return _accepted([row])


@bp.post("/webhooks/sendgrid")
@public
@csrf.exempt
def sendgrid_webhook() -> Response:
    rows = webhooks.handle_sendgrid(
        request_session(),
        current_settings(),
        request.get_data(cache=False),
        request.headers.get("X-Twilio-Email-Event-Webhook-Signature", ""),
        request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp", ""),
        now=utcnow(),
    )
    return _accepted(rows)


@bp.post("/webhooks/mailgun")
@public
@csrf.exempt
def mailgun_webhook() -> Response:
    row = webhooks.handle_mailgun(
        request_session(), current_settings(), request.get_data(cache=False), now=utcnow()
    )
    return _accepted([row])


# -- staff pages ------------------------------------------------------------------------------


@bp.get("/staff/bounces")
@admin_required
def index() -> str:
    session = request_session()
    return render_template(
        "staff/bounces/index.html",
        bounces=services.recent_bounces(session),
        complaints=services.recent_complaints(session),
        inbound=services.recent_inbound(session),
        rejections=services.policy_rejections(session),
    )


@bp.get("/staff/bounces/messages/<int:message_id>")
@admin_required
def show_message(message_id: int) -> str:
    inbound = request_session().get(InboundMessage, message_id)
    if inbound is None:
        raise NotFound("No such inbound message.")
    raw = inbound.raw.decode("utf-8", "replace") if inbound.raw is not None else None
    return render_template("staff/bounces/show.html", inbound=inbound, raw=raw)


# -- flask bounces ... ------------------------------------------------------------------------


@bp.cli.command("serve")
@click.option("--host", default=None, help="Default: BOUNCE_SMTP_HOST.")
@click.option("--port", type=int, default=None, help="Default: BOUNCE_SMTP_PORT.")
def serve(host: str | None, port: int | None) -> None:
    """Run the inbound SMTP receiver for BOUNCE_DOMAIN."""
    from distributor.bounces.receiver import serve_forever

    settings = current_settings()
    serve_forever(
        get_db(), settings, host or settings.bounce_smtp_host, port or settings.bounce_smtp_port
    )


@bp.cli.command("poll")
@click.option("--url", default=None, help="Default: BOUNCE_MAILBOX_URL.")
def poll(url: str | None) -> None:
    """Fetch, process and delete the messages waiting in the bounce mailbox once."""
    from distributor.bounces.mailbox import poll_mailbox

    settings = current_settings()
    if not (url or settings.bounce_mailbox_url):
        raise click.ClickException("set BOUNCE_MAILBOX_URL or pass --url")
    result = poll_mailbox(get_db(), settings, url=url)
    click.echo(f"fetched {result.fetched}, deleted {result.deleted}, failed {result.failed}")


@bp.cli.command("purge")
def purge() -> None:
    """Forget raw messages older than BOUNCE_RAW_RETENTION_DAYS now."""
    with task_session() as session:
        count = services.purge_raw(session, current_settings())
    click.echo(f"purged {count} raw messages")
