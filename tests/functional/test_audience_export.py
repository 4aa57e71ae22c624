"""The journalists CSV export streams page by page, whatever the size of the audience."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from distributor.accounts.models import Role
from distributor.audience import csv_io
from distributor.audience.models import SubscriptionStatus
from tests.support import delivery_factories as f
from tests.support.delivery_seed import person, subscribe


def test_the_export_streams_one_chunk_per_page_with_every_journalist_and_beat(
    client: FlaskClient,
    logged_in: Callable[[Role], Any],
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(csv_io, "EXPORT_PAGE_SIZE", 2)
    climate, ports = f.beat(session, "Climate"), f.beat(session, "Ports")
    people = [person(session, f"desk{i}@paper{i}.example") for i in range(5)]
    subscribe(session, people[0], [climate, ports])
    subscribe(session, people[1], [ports])
    subscribe(session, people[2], [climate], status=SubscriptionStatus.PENDING)
    subscribe(session, people[4], [climate])
    session.commit()
    logged_in(Role.EDITOR)

    response = client.get("/staff/audience/journalists/export.csv", buffered=False)
    assert response.status_code == 200
    chunks = [c.decode() if isinstance(c, bytes) else c for c in response.response]
    response.close()
    # The header, then one chunk for each page of two journalists: never the whole at once.
    assert len(chunks) == 1 + 3
    rows = list(csv.DictReader(io.StringIO("".join(chunks))))
    assert [r["email"] for r in rows] == [p.email for p in people]
    beats = {r["email"]: r["beats"] for r in rows}
    assert beats[people[0].email] == "Climate; Ports"
    assert beats[people[1].email] == "Ports"
    assert beats[people[2].email] == ""  # a pending subscription is no beat yet
    assert beats[people[4].email] == "Climate"

    # The staff filters hold across pages.
    filtered = client.get(f"/staff/audience/journalists/export.csv?beat={climate.id}")
    emails = [r["email"] for r in csv.DictReader(io.StringIO(filtered.get_data(as_text=True)))]
    assert emails == [people[0].email, people[2].email, people[4].email]
