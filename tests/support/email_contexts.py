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
    brand_colour="#0a6e5c",
    boilerplate="The Harbour Light Foundation funds local reporting on <coastal> towns.\n\n"
    "It was founded in 2011 and is based in Portmere.",
)


def test_email() -> dict[str, Any]:
    return {
        "org": ORG,
        "requested_by": "Ada <Admin>",
        "sent_at": "24 November 2026, 09:00 GMT",
        "smtp_url_host": "127.0.0.1:8025",
        "public_base_url": "https://news.harbourlight.example",
    }


def release() -> dict[str, Any]:
    from markupsafe import Markup

    base = "https://news.harbourlight.example"
    return {
        "org": ORG,
        "logo_url": f"{base}/media/logos/0123456789abcdef01234567.png",
        "release": {
            "title": "Sea wall <to be> raised before winter & spring",
            "kind": "Press release",
            "summary": "The council approved a £4m plan to protect 2,000 homes from surges.",
            "body_html": Markup(
                "<p>Portmere's sea wall will be raised by <strong>1.2 metres</strong>, the "
                '<a href="https://council.example/plans">council confirmed</a> today.</p>'
                "<h2>What changes</h2><ul><li>New flood gates</li><li>A siren</li></ul>"
            ),
            "body_text": "Portmere's sea wall will be raised by 1.2 metres, the council "
            "confirmed <https://council.example/plans> today.\n\nWhat changes\n\n"
            "- New flood gates\n- A siren",
            "published": "24 November 2026",
            "url": f"{base}/releases/sea-wall",
            "photo": {
                "url": f"{base}/media/sea-wall/email.jpg",
                "alt": "The old sea wall at high tide",
                "credit": "Photo: Jo Marsh",
                "caption": "Waves over the wall in October.",
            },
            "contacts": [
                {
                    "name": "Sam Rivers",
                    "title": "Head of press",
                    "email": "sam@harbourlight.example",
                    "phone": "+44 20 7946 0000",
                }
            ],
            "attachments": [
                {"filename": "plan.pdf", "url": f"{base}/attachments/ab12.pdf", "size": "471 KB"}
            ],
            "gallery": [],  # tests/functional/test_media_library_pages.py renders a gallery
        },
        "embargo": "25 Nov 2026 09:00 UTC (09:00 GMT)",
        "room": None,  # tests/unit/test_embargo_mail.py renders the embargo-room variants
        "embargo_subject": "25 Nov 09:00 GMT",
        "recipient": {
            "name": "Zoë <O'Brien>",
            "email": "zoe@example.org",
            "reason": "you follow Climate, Coastal towns",
            "preferences_url": f"{base}/preferences/tok-p",
            "unsubscribe_url": f"{base}/unsubscribe/tok-u",
        },
        "pixel": Markup(f'<img src="{base}/t/o/verp.gif" width="1" height="1" alt="" />'),
    }


def digest() -> dict[str, Any]:
    base = "https://news.harbourlight.example"
    return {
        "org": ORG,
        "day": "Tuesday 24 November 2026",
        "releases": [
            {
                "title": "Sea wall <to be> raised before winter",
                "kind": "Press release",
                "summary": "The council approved a £4m plan to protect 2,000 homes.",
                "url": f"{base}/releases/sea-wall",
                "embargo": None,
            },
            {
                "title": "Annual report 2026",
                "kind": "Report",
                "summary": "",
                "url": f"{base}/releases/annual-report",
                "embargo": "25 Nov 2026 09:00 UTC (09:00 GMT)",
            },
        ],
        "recipient": {
            "name": "Zoë <O'Brien>",
            "email": "zoe@example.org",
            "preferences_url": f"{base}/preferences/tok-p",
            "unsubscribe_url": f"{base}/unsubscribe/tok-u",
        },
    }


def subscription_confirm() -> dict[str, Any]:
    return {
        "org": ORG,
        "beats": ["Climate", "Coastal communities & <fisheries>"],
        "confirm_url": "https://news.harbourlight.example/subscribe/confirm/tok-c",
        "valid_days": 7,
        "consent_text": "Send me press releases on the beats I ticked.",
    }


def _embargo_notice() -> dict[str, Any]:
    base = "https://news.harbourlight.example"
    return {
        "org": ORG,
        "name": "Zoë <O'Brien>",
        "title": "Sea wall <to be> raised & more",
        "embargo": "25 Nov 2026 09:00 UTC (09:00 GMT)",
        "room_url": f"{base}/embargo/room-token",
        "public_url": f"{base}/releases/sea-wall",
        "changes": ["Title changed (was: Sea wall <draft>)", "Attachment added: plan & map.pdf"],
        "browser_url": f"{base}/embargo/room-token/browser/nonce/code",
        "base_url": base,
    }


def notification() -> dict[str, Any]:
    base = "https://news.harbourlight.example"
    return {
        "org": ORG,
        "subject_line": "Sent back: Sea wall <to be> raised",
        "headline": "Eve <Editor> sent your release back to draft.",
        "title": "Sea wall <to be> raised",
        "comment": "Check the <quote> from the mayor.",
        "when": "",
        "figures": [(118, "delivered to the mail servers"), (2, "failed")],
        "release_url": f"{base}/staff/releases/7",
        "report_url": f"{base}/staff/reports/releases/7",
        "is_sent": False,
        "preferences_url": f"{base}/staff/notifications",
    }


def media_rights_ending() -> dict[str, Any]:
    return {
        "org": ORG,
        "name": "Pat <Press>",
        "title": "Boats at low tide & dawn",
        "credit": "Photo: Ade Mensah/Westcoast Pictures",
        "ends": "5 December 2026",
        "used_in": ["Sea wall <to be> raised before winter"],
        "asset_url": "https://news.harbourlight.example/staff/media/7",
    }


CONTEXTS: dict[str, Callable[[], dict[str, Any]]] = {
    "media_rights_ending": media_rights_ending,
    "embargo_correction": _embargo_notice,
    "embargo_lifted": _embargo_notice,
    "embargo_new_browser": _embargo_notice,
    "test_email": test_email,
    "release": release,
    "digest": digest,
    "subscription_confirm": subscription_confirm,
    "notification": notification,
}
