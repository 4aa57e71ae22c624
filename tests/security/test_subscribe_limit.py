"""Finding 13: /subscribe and /subscribe/embed share one rate limit per client address."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy.orm import Session

from distributor.app import create_app
from distributor.audience import consent
from distributor.audience.models import Beat
from distributor.mail.transport import InMemoryTransport
from distributor.settings import Settings
from tests.support.forms import csrf_token


def test_both_subscribe_forms_draw_on_one_budget(
    settings: Settings, db: Any, session: Session, monkeypatch: Any
) -> None:
    monkeypatch.setattr(consent, "enqueue_after_commit", lambda *a, **k: None)
    beat = Beat(name="Climate", slug="climate-limit", description="", is_public=True)
    session.add(beat)
    session.commit()
    limited = dataclasses.replace(
        settings, rate_limits_enabled=True, subscribe_rate_limit="3 per minute"
    )
    client = create_app(limited, db=db, mail_transport=InMemoryTransport()).test_client()
    statuses = []
    for n in range(4):
        data = {"email": f"budget{n}@example.org", "beats": [beat.id]}
        if n % 2:
            statuses.append(client.post("/subscribe/embed", data=data).status_code)
        else:
            token = csrf_token(client, "/subscribe")
            statuses.append(
                client.post("/subscribe", data={**data, "csrf_token": token}).status_code
            )
    assert statuses == [200, 200, 200, 429]
