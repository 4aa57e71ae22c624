"""Finding 1: who may lift which suppression, and what a complaint does to subscriptions."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.audience import services
from distributor.audience.models import (
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionLift,
    SuppressionReason,
)
from distributor.errors import Forbidden, ValidationFailed
from tests.support import delivery_factories as f
from tests.support.forms import csrf_token
from tests.support.releases import staff

PERSONAL = [
    SuppressionReason.COMPLAINT,
    SuppressionReason.UNSUBSCRIBED_ALL,
    SuppressionReason.HARD_BOUNCE,
    SuppressionReason.DO_NOT_CONTACT,
]


@pytest.mark.parametrize("reason", PERSONAL)
@pytest.mark.parametrize("role", [Role.PRESS_OFFICER, Role.EDITOR])
def test_staff_below_admin_cannot_lift_personal_suppressions(
    client: FlaskClient,
    logged_in: Callable[[Role], User],
    session: Session,
    reason: SuppressionReason,
    role: Role,
) -> None:
    entry = services.suppress(session, "angry@example.org", reason)
    session.commit()
    user = logged_in(role)
    if role is Role.PRESS_OFFICER:
        # Press officers do not manage suppressions at all: neither the page nor the lift.
        token = csrf_token(client, "/staff/releases/")
        assert client.get("/staff/audience/suppressions").status_code == 403
        r = client.post(
            f"/staff/audience/suppressions/{entry.id}/lift",
            data={"csrf_token": token, "justification": "they asked"},
        )
        assert r.status_code == 403
    else:
        token = csrf_token(client, "/staff/audience/suppressions")
        page = client.get("/staff/audience/suppressions").get_data(as_text=True)
        assert f"/staff/audience/suppressions/{entry.id}/lift" not in page
        r = client.post(
            f"/staff/audience/suppressions/{entry.id}/lift",
            data={"csrf_token": token, "justification": "they asked"},
            follow_redirects=True,
        )
        assert "Only an admin" in r.get_data(as_text=True)
    assert services.is_suppressed(session, "angry@example.org")
    with pytest.raises(Forbidden):
        services.lift_suppression(session, "angry@example.org", by=user, justification="x")


def test_admin_lift_needs_a_reason_and_is_recorded(
    client: FlaskClient, logged_in: Callable[[Role], User], session: Session
) -> None:
    entry = services.suppress(session, "angry@example.org", SuppressionReason.COMPLAINT)
    session.commit()
    admin = logged_in(Role.ADMIN)
    token = csrf_token(client, "/staff/audience/suppressions")
    r = client.post(
        f"/staff/audience/suppressions/{entry.id}/lift",
        data={"csrf_token": token, "justification": "  "},
        follow_redirects=True,
    )
    assert "Say why" in r.get_data(as_text=True)
    assert services.is_suppressed(session, "angry@example.org")
    with pytest.raises(ValidationFailed):
        services.lift_suppression(session, "angry@example.org", by=admin, justification="")
    client.post(
        f"/staff/audience/suppressions/{entry.id}/lift",
        data={
            "csrf_token": token,
            "justification": "complaint was a mis-click, confirmed by phone",
        },
    )
    session.expire_all()
    assert not services.is_suppressed(session, "angry@example.org")
    lift = session.scalar(select(SuppressionLift))
    assert lift is not None
    assert lift.lifted_by_id == admin.id and lift.reason == SuppressionReason.COMPLAINT
    assert "mis-click" in lift.justification


def test_any_staff_may_lift_a_soft_bounce_score(
    logged_in: Callable[[Role], User], session: Session
) -> None:
    services.suppress(session, "full@example.org", SuppressionReason.SOFT_BOUNCE)
    officer = logged_in(Role.PRESS_OFFICER)
    services.lift_suppression(session, "full@example.org", by=officer, justification="")
    assert not services.is_suppressed(session, "full@example.org")


def test_a_complaint_ends_every_subscription(session: Session) -> None:
    j = f.journalist(session, email="angry@example.org")
    climate, fish = f.beat(session, "Climate"), f.beat(session, "Fish")
    for b in (climate, fish):
        session.add(
            Subscription(journalist_id=j.id, beat_id=b.id, status=SubscriptionStatus.CONFIRMED)
        )
    session.flush()
    services.suppress(session, "Angry@example.org", SuppressionReason.COMPLAINT)
    statuses = session.scalars(
        select(Subscription.status).where(Subscription.journalist_id == j.id)
    ).all()
    assert statuses == [SubscriptionStatus.UNSUBSCRIBED] * 2
    # Lifted by an admin, the entry is gone, but no subscription came back with it.
    entry = session.scalar(select(Suppression))
    assert entry is not None
    admin = staff(session, Role.ADMIN)
    services.lift_suppression(session, "angry@example.org", by=admin, justification="phone")
    assert (
        session.scalar(
            select(Subscription.id).where(Subscription.status == SubscriptionStatus.CONFIRMED)
        )
        is None
    )
