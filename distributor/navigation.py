"""The staff navigation: each domain adds its entry here (label, endpoint, roles)."""

from __future__ import annotations

from dataclasses import dataclass

from distributor.accounts.models import Role
from distributor.security import ADMINS, ALL_STAFF


@dataclass(frozen=True)
class NavItem:
    label: str
    endpoint: str
    roles: frozenset[Role]


STAFF_NAV: list[NavItem] = [
    NavItem("Home", "admin.home", ALL_STAFF),
    NavItem("Dev inbox", "devinbox.index", ALL_STAFF),
    NavItem("Users", "accounts.users", ADMINS),
    NavItem("Test email", "admin.test_email", ADMINS),
]
