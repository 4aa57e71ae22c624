"""The staff navigation: each domain adds its entry here (label, endpoint, roles)."""

from __future__ import annotations

from dataclasses import dataclass

from distributor.accounts.models import Role
from distributor.security import ADMINS, ALL_STAFF, EDITORS


@dataclass(frozen=True)
class NavItem:
    label: str
    endpoint: str
    roles: frozenset[Role]


STAFF_NAV: list[NavItem] = [
    NavItem("Home", "admin.home", ALL_STAFF),
    NavItem("Releases", "releases.index", ALL_STAFF),
    NavItem("Media library", "media.index", ALL_STAFF),
    NavItem("Journalists", "audience.journalists", ALL_STAFF),
    NavItem("Beats", "audience.beats", ALL_STAFF),
    NavItem("Media lists", "audience.media_lists", ALL_STAFF),
    # Press officers neither send nor manage suppressions: they do not see these entries.
    NavItem("Suppressions", "audience.suppressions", EDITORS),
    NavItem("Embargo terms", "embargo.terms", EDITORS),
    NavItem("Dev inbox", "devinbox.index", EDITORS),
    NavItem("Users", "accounts.users", ADMINS),
    NavItem("Organisation", "organisation.edit", ADMINS),
    NavItem("Test email", "admin.test_email", ADMINS),
    NavItem("Bounces", "bounces.index", ADMINS),
    NavItem("Reports", "reports.index", ALL_STAFF),
    NavItem("API tokens", "api_tokens.index", ALL_STAFF),
]
