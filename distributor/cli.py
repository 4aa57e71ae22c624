"""``flask`` CLI commands: migrations, staff users, demo data, the dev inbox."""

from __future__ import annotations

import secrets

import click
from flask import Flask
from flask.cli import AppGroup

from distributor.accounts import services as accounts
from distributor.accounts.models import Role
from distributor.db import get_db, task_session
from distributor.errors import DomainError
from distributor.settings import current_settings

db_cli = AppGroup("db", help="Database schema migrations.")
users_cli = AppGroup("users", help="Create, list, enable and disable staff accounts.")
demo_cli = AppGroup("demo", help="Demo organisation and content for a first start.")
devinbox_cli = AppGroup("devinbox", help="The development SMTP inbox.")
media_cli = AppGroup("media", help="Stored files: copy local files into MEDIA_STORAGE_URL.")


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from distributor.migrate import upgrade

    settings = current_settings()
    with get_db().engine.begin() as conn:
        upgrade(settings.sqlalchemy_url, conn)
    click.echo("database is up to date")


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--name", default="")
@click.option(
    "--role", type=click.Choice([r.value for r in Role]), default=Role.PRESS_OFFICER.value
)
@click.password_option(
    "--password", prompt="Password", confirmation_prompt=True, help="At least 10 characters."
)
def users_create(email: str, name: str, role: str, password: str) -> None:
    """Create a staff account."""
    try:
        with task_session() as session:
            user = accounts.create_user(
                session, email=email, name=name or email, password=password, role=Role(role)
            )
            click.echo(f"created {user.email} as {user.role.label}")
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc


def _set_active(email: str, *, is_active: bool) -> None:
    try:
        with task_session() as session:
            user = accounts.set_active(session, email, is_active=is_active)
            click.echo(f"{user.email} is now {'active' if user.is_active else 'disabled'}")
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc


@users_cli.command("disable")
@click.argument("email")
def users_disable(email: str) -> None:
    """Disable a staff account: it can no longer log in."""
    _set_active(email, is_active=False)


@users_cli.command("enable")
@click.argument("email")
def users_enable(email: str) -> None:
    """Re-enable a disabled staff account."""
    _set_active(email, is_active=True)


@users_cli.command("list")
def users_list() -> None:
    """List staff accounts."""
    with task_session() as session:
        for user in accounts.list_users(session):
            state = "active" if user.is_active else "disabled"
            click.echo(f"{user.email:40} {user.role.value:14} {state}")


@demo_cli.command("seed")
@click.option("--admin-email", default="admin@harbourlight.example", show_default=True)
def demo_seed(admin_email: str) -> None:
    """Create the demo organisation and an admin account (printing its credentials)."""
    from distributor.demo import seed_demo

    password = secrets.token_urlsafe(12)
    with task_session() as session:
        created = seed_demo(
            session, current_settings(), admin_email=admin_email, admin_password=password
        )
    if created.admin_created:
        click.echo("")
        click.echo("  Demo admin account created:")
        click.echo(f"    email:    {admin_email}")
        click.echo(f"    password: {password}")
        click.echo("")
    else:
        click.echo(f"demo data present; admin account {admin_email} already exists")
    for line in created.notes:
        click.echo(line)


@devinbox_cli.command("serve")
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
def devinbox_serve(host: str | None, port: int | None) -> None:
    """Run the development SMTP inbox (every message is kept for the web UI)."""
    from distributor.devinbox.server import serve_forever

    settings = current_settings()
    serve_forever(get_db(), host or settings.dev_smtp_host, port or settings.dev_smtp_port)


@media_cli.command("import-files")
@click.option(
    "--from",
    "source",
    type=click.Path(file_okay=False),
    default=None,
    help="The local folder to copy (default: DATA_DIR/media).",
)
def media_import_files(source: str | None) -> None:
    """Copy lead photos, attachments, logos and library files kept in a local folder into the
    configured storage (run once after setting MEDIA_STORAGE_URL; safe to run again)."""
    from pathlib import Path

    from distributor.storage import app_storage, import_local_files, local_root

    folder = Path(source) if source else local_root(current_settings().data_dir)
    if not folder.is_dir():
        raise click.ClickException(f"no folder {folder}")
    copied, skipped = import_local_files(folder, app_storage())
    click.echo(f"{copied} file(s) copied, {skipped} already there or skipped")


def register_cli(app: Flask) -> None:
    for group in (db_cli, users_cli, demo_cli, devinbox_cli, media_cli):
        app.cli.add_command(group)
