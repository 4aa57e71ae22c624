"""First-start demo data: the organisation and an admin account.

Domain packages add their own demo content through ``demo_seeders()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from distributor.accounts import services as accounts
from distributor.accounts.models import Role
from distributor.organisation.services import ensure_organisation
from distributor.settings import Settings

Seeder = Callable[[Session, Settings], list[str]]


def demo_seeders() -> list[Seeder]:
    """Each domain's demo seeder: gets (session, settings), returns lines to print, idempotent."""
    seeders: list[Seeder] = []
    # Domains append their seeder here, e.g.:
    #   from distributor.releases.demo import seed_releases
    #   seeders.append(seed_releases)
    from distributor.audience.demo import seed_audience
    from distributor.releases.demo import seed_releases

    seeders.append(seed_audience)
    seeders.append(seed_releases)
    from distributor.media.demo import seed_media

    seeders.append(seed_media)
    from distributor.reports.sample import seed_reports_demo

    seeders.append(seed_reports_demo)
    from distributor.organisation.demo import seed_organisation_demo

    seeders.append(seed_organisation_demo)
    from distributor.newsroom.demo import seed_newsroom_demo

    seeders.append(seed_newsroom_demo)  # after the releases: it features one of them
    return seeders


@dataclass
class SeedResult:
    admin_created: bool
    notes: list[str] = field(default_factory=list)


def seed_demo(
    session: Session, settings: Settings, *, admin_email: str, admin_password: str
) -> SeedResult:
    """Idempotently create the organisation, the admin account and each domain's demo data."""
    from distributor.notifications.handlers import MUTED

    # Demo releases walk the workflow to look real; nobody should be mailed about that.
    session.info[MUTED] = True
    ensure_organisation(session, settings)
    result = SeedResult(admin_created=False)
    if accounts.find_user_by_email(session, admin_email) is None:
        accounts.create_user(
            session, email=admin_email, name="Demo Admin", password=admin_password, role=Role.ADMIN
        )
        result.admin_created = True
    for seeder in demo_seeders():
        result.notes.extend(seeder(session, settings))
    return result
