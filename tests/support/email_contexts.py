"""Fixed sample contexts for every email template, used by the snapshot tests.

Each domain that adds a template under ``templates/email/`` adds its context here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from distributor.organisation.models import Organisation

ORG = Organisation(
    name="Harbour Light Foundation",
    tagline="Independent reporting on coastal communities.",
    postal_address="14 Quay Street, Portmere PM1 4QS, United Kingdom",
    timezone="Europe/London",
    press_email="press@harbourlight.example",
    website_url="https://harbourlight.example",
)


def test_email() -> dict[str, Any]:
    return {
        "org": ORG,
        "requested_by": "Ada <Admin>",
        "sent_at": "24 November 2026, 09:00 GMT",
        "smtp_url_host": "127.0.0.1:8025",
        "public_base_url": "https://news.harbourlight.example",
    }


CONTEXTS: dict[str, Callable[[], dict[str, Any]]] = {
    "test_email": test_email,
}
