"""SMTP replies become delivery outcomes (RFC 5321, RFC 3463, RFC 1047) with a backoff."""

from __future__ import annotations

import datetime as dt

import pytest

from distributor.delivery.classify import (
    Outcome,
    Stage,
    classify_connection_lost,
    classify_reply,
    enhanced_status,
    plan_retry,
    retry_delay,
)


@pytest.mark.parametrize(
    ("code", "text", "stage", "outcome", "suppress", "policy", "throttle"),
    [
        (250, "2.0.0 Ok: queued as 4F2", Stage.DOT, Outcome.SENT, False, False, False),
        (451, "4.3.0 Temporary lookup failure", Stage.RCPT, Outcome.DEFERRED, False, False, False),
        (450, "4.2.1 Mailbox busy", Stage.RCPT, Outcome.DEFERRED, False, False, False),
        (
            421,
            "4.7.0 Too many connections, slow down",
            Stage.MAIL,
            Outcome.DEFERRED,
            False,
            False,
            True,
        ),
        (451, "4.7.1 Greylisted, try later", Stage.RCPT, Outcome.DEFERRED, False, False, True),
        (
            550,
            "5.1.1 <x@y>: Recipient address rejected",
            Stage.RCPT,
            Outcome.FAILED,
            True,
            False,
            False,
        ),
        (
            550,
            "5.1.10 RESOLVER.ADR.RecipientNotFound",
            Stage.RCPT,
            Outcome.FAILED,
            True,
            False,
            False,
        ),
        (554, "5.2.1 Mailbox disabled", Stage.RCPT, Outcome.FAILED, True, False, False),
        (550, "5.7.1 Message rejected as spam", Stage.DOT, Outcome.FAILED, False, True, False),
        (
            550,
            "5.7.26 Unauthenticated email is not accepted",
            Stage.DOT,
            Outcome.FAILED,
            False,
            True,
            False,
        ),
        (552, "5.2.2 Mailbox full", Stage.RCPT, Outcome.DEFERRED, False, False, False),
        (552, "5.3.4 Message size exceeds limit", Stage.DOT, Outcome.FAILED, False, False, False),
        (554, "Transaction failed", Stage.DOT, Outcome.FAILED, False, False, False),
    ],
)
def test_reply_classes(
    code: int,
    text: str,
    stage: Stage,
    outcome: Outcome,
    suppress: bool,
    policy: bool,
    throttle: bool,
) -> None:
    verdict = classify_reply(code, text, stage)
    assert verdict.outcome is outcome
    assert verdict.is_suppressing is suppress
    assert verdict.is_policy_rejection is policy
    assert verdict.is_domain_throttle is throttle


def test_connection_lost_after_the_dot_is_unknown_and_before_it_is_transient() -> None:
    assert classify_connection_lost(Stage.DOT).outcome is Outcome.UNKNOWN
    for stage in (Stage.CONNECT, Stage.MAIL, Stage.RCPT, Stage.DATA):
        assert classify_connection_lost(stage).outcome is Outcome.DEFERRED


def test_enhanced_status_is_found_inside_the_text() -> None:
    assert enhanced_status("<a@b>: 5.1.1 user unknown") == "5.1.1"
    assert enhanced_status("Mailbox unavailable") is None


def test_backoff_doubles_from_the_base_and_is_capped() -> None:
    assert [retry_delay(n, 300, 4000) for n in (1, 2, 3, 4, 5, 50)] == [
        300,
        600,
        1200,
        2400,
        4000,
        4000,
    ]


def test_retries_stop_when_the_lifetime_is_over() -> None:
    start = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)
    early = plan_retry(
        attempts=1,
        first_attempt_at=start,
        now=start,
        base_seconds=300,
        max_seconds=4000,
        lifetime_hours=24,
    )
    assert early.outcome is Outcome.DEFERRED
    assert early.next_attempt_at == start + dt.timedelta(minutes=5)
    late = plan_retry(
        attempts=20,
        first_attempt_at=start,
        now=start + dt.timedelta(hours=23, minutes=30),
        base_seconds=300,
        max_seconds=4000,
        lifetime_hours=24,
    )
    assert late.outcome is Outcome.FAILED
    assert late.next_attempt_at is None
