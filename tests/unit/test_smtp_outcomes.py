"""The one authority on what an SMTP reply or a delivery report means.

A table over stage x reply class x RFC 3463 subject: who is at fault decides whether anyone
is suppressed, and a refusal before RCPT is never the recipient's fault (RFC 5321 4.1.1.3).
"""

from __future__ import annotations

import pytest

from distributor.mail.outcomes import (
    BounceKind,
    Outcome,
    Reply,
    Stage,
    Subject,
    classify_connection_lost,
    classify_reply,
    classify_report,
    enhanced_status,
    repeated_deferral,
    says_no_such_user,
)

HARD, SOFT, POLICY, MESSAGE = (
    BounceKind.HARD,
    BounceKind.SOFT,
    BounceKind.POLICY,
    BounceKind.MESSAGE,
)

# fmt: off
CASES = [
    # (stage, code, text, outcome, subject, kind)
    # Accepted at any stage.
    (Stage.DOT, 250, "2.0.0 Ok: queued as 4F2", Outcome.DELIVERED, Subject.NONE, None),
    (Stage.DATA, 354, "End data with <CR><LF>.<CR><LF>", Outcome.DELIVERED, Subject.NONE, None),
    # Connect and EHLO: always the relay, whatever the class.
    (Stage.CONNECT, 421, "4.7.0 Too many connections", Outcome.DEFERRED, Subject.RELAY, None),
    (Stage.CONNECT, 554, "5.7.1 No SMTP service here", Outcome.DEFERRED, Subject.RELAY, None),
    (Stage.CONNECT, 550, "5.1.1 nonsense at connect", Outcome.DEFERRED, Subject.RELAY, None),
    (Stage.HELO, 501, "5.5.2 Syntax: EHLO hostname", Outcome.DEFERRED, Subject.RELAY, None),
    (Stage.HELO, 535, "5.7.8 Authentication credentials invalid", Outcome.DEFERRED, Subject.RELAY, None),
    (Stage.HELO, 454, "4.7.0 TLS not available due to local problem", Outcome.DEFERRED, Subject.RELAY, None),
    # MAIL FROM: our envelope sender, our host, or the declared size; never the recipient.
    (
        Stage.MAIL,
        550,
        "5.1.8 <b@x>: Sender address rejected: Domain not found",
        Outcome.DEFERRED,
        Subject.SENDER,
        POLICY,
    ),
    (Stage.MAIL, 553, "5.1.7 The sender address is invalid", Outcome.DEFERRED, Subject.SENDER, POLICY),
    (Stage.MAIL, 550, "5.1.1 <b@x>: Sender address rejected", Outcome.DEFERRED, Subject.SENDER, POLICY),
    (Stage.MAIL, 554, "5.7.1 Access denied", Outcome.DEFERRED, Subject.SENDER, POLICY),
    (Stage.MAIL, 550, "Rejected", Outcome.DEFERRED, Subject.SENDER, POLICY),
    (Stage.MAIL, 450, "4.7.1 <host>: too much mail from 192.0.2.1", Outcome.DEFERRED, Subject.RELAY, None),
    (Stage.MAIL, 451, "4.3.0 Temporary lookup failure", Outcome.DEFERRED, Subject.RELAY, None),
    (Stage.MAIL, 454, "Throttling failure: Maximum sending rate exceeded.", Outcome.DEFERRED, Subject.RELAY, None),
    (Stage.MAIL, 421, "4.4.2 Timeout exceeded", Outcome.DEFERRED, Subject.RELAY, None),
    (Stage.MAIL, 552, "5.3.4 Message size exceeds fixed limit", Outcome.DEFERRED, Subject.MESSAGE, MESSAGE),
    (Stage.MAIL, 555, "5.5.4 Unsupported option: SMTPUTF8", Outcome.DEFERRED, Subject.RELAY, BounceKind.RELAY),
    (Stage.MAIL, 503, "5.5.1 Error: nested MAIL command", Outcome.DEFERRED, Subject.RELAY, BounceKind.RELAY),
    (Stage.MAIL, 530, "5.7.0 Authentication required", Outcome.DEFERRED, Subject.RELAY, BounceKind.RELAY),
    # RCPT: the recipient, its domain, or us.
    (
        Stage.RCPT,
        550,
        "5.1.1 <x@y>: Recipient address rejected: User unknown",
        Outcome.FAILED,
        Subject.RECIPIENT,
        HARD,
    ),
    (Stage.RCPT, 550, "5.1.10 RESOLVER.ADR.RecipientNotFound", Outcome.FAILED, Subject.RECIPIENT, HARD),
    (Stage.RCPT, 550, "5.1.2 Host unknown", Outcome.FAILED, Subject.RECIPIENT, HARD),
    (Stage.RCPT, 554, "5.2.1 Mailbox disabled", Outcome.FAILED, Subject.RECIPIENT, HARD),
    (Stage.RCPT, 550, "5.1.8 Sender address rejected", Outcome.FAILED, Subject.SENDER, POLICY),
    (Stage.RCPT, 550, "5.1.7 Bad sender's mailbox address syntax", Outcome.FAILED, Subject.SENDER, POLICY),
    (Stage.RCPT, 550, "5.7.1 Recipient rejected by policy", Outcome.FAILED, Subject.SENDER, POLICY),
    (Stage.RCPT, 554, "5.7.1 <x@y>: Relay access denied", Outcome.DEFERRED, Subject.RELAY, BounceKind.RELAY),
    (Stage.RCPT, 552, "5.2.2 Mailbox full", Outcome.DEFERRED, Subject.RECIPIENT, None),
    (Stage.RCPT, 552, "Too many recipients", Outcome.DEFERRED, Subject.RECIPIENT, None),
    (Stage.RCPT, 553, "5.3.0 <x@y>... Unknown user", Outcome.FAILED, Subject.RECIPIENT, HARD),
    (Stage.RCPT, 550, "Unknown user: x@y", Outcome.FAILED, Subject.RECIPIENT, HARD),
    (Stage.RCPT, 550, "Sorry, no mailbox here by that name.", Outcome.FAILED, Subject.RECIPIENT, HARD),
    (Stage.RCPT, 550, "Blocked: listed at zen.spamhaus.org", Outcome.FAILED, Subject.SENDER, POLICY),
    (Stage.RCPT, 550, "Requested action not taken", Outcome.FAILED, Subject.RECIPIENT, SOFT),
    (Stage.RCPT, 550, "5.4.1 Recipient address rejected: Access denied", Outcome.FAILED, Subject.DOMAIN, SOFT),
    (
        Stage.RCPT,
        450,
        "4.2.0 <x@y>: Recipient address rejected: try later",
        Outcome.DEFERRED,
        Subject.RECIPIENT,
        None,
    ),
    (Stage.RCPT, 450, "4.1.1 Recipient lookup failed, try again", Outcome.DEFERRED, Subject.RECIPIENT, None),
    (Stage.RCPT, 451, "4.7.1 Greylisted, try later", Outcome.DEFERRED, Subject.DOMAIN, None),
    (Stage.RCPT, 421, "4.7.0 closing connection", Outcome.DEFERRED, Subject.RELAY, None),
    (Stage.RCPT, 503, "5.5.1 Error: need MAIL command", Outcome.DEFERRED, Subject.RELAY, None),
    (Stage.RCPT, 451, "4.4.3 Domain lookup failed", Outcome.DEFERRED, Subject.DOMAIN, None),
    # RFC 3463 X.3.x at RCPT: the whole system only when full (4.3.1) or shut (4.3.2);
    # any other is this recipient's (the relay goes on taking the others).
    (Stage.RCPT, 451, "4.3.0 <x@y>: Temporary lookup failure", Outcome.DEFERRED, Subject.RECIPIENT, None),
    (Stage.RCPT, 451, "4.3.0 Temporary failure, try again later", Outcome.DEFERRED, Subject.RECIPIENT, None),
    (Stage.RCPT, 452, "4.3.1 Insufficient system storage", Outcome.DEFERRED, Subject.RELAY, None),
    (Stage.RCPT, 451, "4.3.2 System not accepting network messages", Outcome.DEFERRED, Subject.RELAY, None),
    # DATA command.
    (Stage.DATA, 554, "5.5.1 Error: no valid recipients", Outcome.DEFERRED, Subject.RELAY, None),
    (Stage.DATA, 451, "4.3.0 Local error", Outcome.DEFERRED, Subject.RELAY, None),
    (Stage.DATA, 421, "4.3.2 Shutting down", Outcome.DEFERRED, Subject.RELAY, None),
    # After the final dot.
    (
        Stage.DOT,
        552,
        "5.3.4 Message size exceeds fixed maximum message size",
        Outcome.FAILED,
        Subject.MESSAGE,
        MESSAGE,
    ),
    (Stage.DOT, 554, "5.6.0 Message content rejected", Outcome.FAILED, Subject.MESSAGE, MESSAGE),
    (Stage.DOT, 550, "5.7.1 Message rejected as spam", Outcome.FAILED, Subject.SENDER, POLICY),
    (Stage.DOT, 550, "5.7.26 Unauthenticated email is not accepted", Outcome.FAILED, Subject.SENDER, POLICY),
    (
        Stage.DOT,
        550,
        "5.1.1 The email account that you tried to reach does not exist",
        Outcome.FAILED,
        Subject.RECIPIENT,
        HARD,
    ),
    (Stage.DOT, 451, "4.7.1 Please try again later", Outcome.DEFERRED, Subject.DOMAIN, None),
    (Stage.DOT, 451, "4.3.0 Error: queue file write error", Outcome.DEFERRED, Subject.RELAY, None),
    (Stage.DOT, 421, "4.7.0 Too many errors, closing", Outcome.DEFERRED, Subject.RELAY, None),
    (
        Stage.DOT,
        450,
        "4.7.1 Throttling failure: Daily message quota exceeded",
        Outcome.DEFERRED,
        Subject.RELAY,
        None,
    ),
    (Stage.DOT, 554, "Transaction failed", Outcome.FAILED, Subject.RECIPIENT, SOFT),
]
# fmt: on


@pytest.mark.parametrize(("stage", "code", "text", "outcome", "subject", "kind"), CASES)
def test_reply_table(
    stage: Stage,
    code: int,
    text: str,
    outcome: Outcome,
    subject: Subject,
    kind: BounceKind | None,
) -> None:
    verdict = classify_reply(Reply(stage, code, text))
    assert (verdict.outcome, verdict.subject, verdict.kind) == (outcome, subject, kind)
    assert verdict.is_permanent is (500 <= code < 600)


@pytest.mark.parametrize("stage", [Stage.CONNECT, Stage.HELO, Stage.MAIL])
@pytest.mark.parametrize(
    "code", [421, 450, 451, 452, 454, 500, 501, 503, 530, 535, 550, 551, 552, 553, 554]
)
@pytest.mark.parametrize("status", ["", "5.1.1", "5.1.8", "5.2.1", "5.7.1", "4.7.0", "4.2.0"])
def test_nothing_before_rcpt_is_the_recipients_fault(stage: Stage, code: int, status: str) -> None:
    verdict = classify_reply(Reply(stage, code, f"{status} Mailbox unavailable: user unknown"))
    assert verdict.subject is not Subject.RECIPIENT
    assert not verdict.is_suppressing
    # Nothing fails a row before RCPT: a declared size the server refuses stops the send.
    assert verdict.outcome is not Outcome.FAILED


def test_a_permanent_refusal_of_our_sender_stops_the_send() -> None:
    verdict = classify_reply(Reply(Stage.MAIL, 550, "5.1.8 Sender address rejected"))
    assert verdict.stops_the_send and not verdict.is_suppressing
    assert not classify_reply(Reply(Stage.RCPT, 550, "5.1.1 User unknown")).stops_the_send
    assert not classify_reply(Reply(Stage.MAIL, 450, "4.7.1 too much mail")).stops_the_send


@pytest.mark.parametrize(
    ("stage", "outcome"),
    [
        (Stage.CONNECT, Outcome.DEFERRED),
        (Stage.HELO, Outcome.DEFERRED),
        (Stage.MAIL, Outcome.DEFERRED),
        (Stage.RCPT, Outcome.DEFERRED),
        (Stage.DATA, Outcome.DEFERRED),
        (Stage.DOT, Outcome.IN_DOUBT),
    ],
)
def test_connection_lost_at_each_stage(stage: Stage, outcome: Outcome) -> None:
    """RFC 1047: only a drop after the final dot leaves the outcome unknown."""
    verdict = classify_connection_lost(stage)
    assert verdict.outcome is outcome
    assert verdict.subject is Subject.RELAY and not verdict.is_suppressing
    assert classify_reply(Reply(stage, 0, "")) == verdict


@pytest.mark.parametrize(
    ("status", "diagnostic", "action", "kind"),
    [
        ("5.1.1", "smtp; 550 5.1.1 user unknown", "failed", HARD),
        ("5.2.1", "", "failed", HARD),
        ("5.0.0", "smtp; 553 5.3.0 <x@y>... Unknown user", "failed", HARD),
        ("5.0.0", "smtp; 550 x@y... User not listed in Domino Directory", "failed", HARD),
        ("5.3.4", "smtp; 552 5.3.4 message too big", "failed", MESSAGE),
        ("5.2.2", "smtp; 552 5.2.2 mailbox full", "failed", SOFT),
        ("4.4.7", "Delivery time expired", "failed", SOFT),
        ("4.2.2", "mailbox full", "failed", SOFT),
        ("5.7.1", "smtp; 550 5.7.1 rejected as spam", "failed", POLICY),
        ("5.1.8", "", "failed", POLICY),
        ("5.4.4", "Unable to route", "failed", SOFT),
        ("", "", "failed", SOFT),
    ],
)
def test_reports_after_acceptance(
    status: str, diagnostic: str, action: str, kind: BounceKind
) -> None:
    verdict = classify_report(status, diagnostic, action=action)
    assert verdict.outcome is Outcome.FAILED
    assert verdict.kind is kind
    assert verdict.is_suppressing is (kind is HARD)


def test_delayed_report_is_not_a_failure() -> None:
    assert classify_report("4.4.1", "no answer", action="delayed").outcome is Outcome.DEFERRED
    assert classify_report("2.0.0", "", action="delivered").outcome is Outcome.DELIVERED


def test_enhanced_status_and_wording() -> None:
    assert enhanced_status("550-5.1.1 The email account") == "5.1.1"
    assert enhanced_status("5.1.10 RESOLVER") == "5.1.10"
    assert enhanced_status("version 1.2.3.4") is None
    assert says_no_such_user("User unknown in virtual mailbox table")
    assert not says_no_such_user("Sender address rejected: user unknown in relay table")
    assert not says_no_such_user("Message accepted")


def test_describe_keeps_stage_code_and_text() -> None:
    reply = Reply(Stage.RCPT, 550, "5.1.1 <x@y>:\r\n Recipient   rejected")
    assert reply.describe() == "rcpt 550 5.1.1 <x@y>: Recipient rejected"
    assert Reply(Stage.DOT, 0, "").describe() == "dot: connection lost, no reply"


# What a reply about the relay asks of every worker: fewer connections, a lower shared rate,
# a pause, or nothing; and replies about a recipient or a domain are no relay trouble at all.
# fmt: off
RELAY_CASES = [
    # Postfix smtpd_client_connection_count_limit, at connect.
    (
        Stage.CONNECT,
        421,
        "4.7.0 relay.test Error: too many connections from 127.0.0.1",
        "connections",
    ),
    (Stage.CONNECT, 421, "4.4.5 - Too many connections from your host", "connections"),
    (Stage.CONNECT, 421, "Service not available, closing transmission channel", "connections"),
    (Stage.HELO, 421, "4.7.0 Too many concurrent SMTP connections", "connections"),
    # Postfix anvil (smtpd_client_message_rate_limit, recipient rate), SES, Exchange Online.
    (Stage.MAIL, 450, "4.7.1 Error: too much mail from 127.0.0.1", "rate"),
    (Stage.MAIL, 450, "4.7.1 Error: too many messages from 127.0.0.1", "rate"),
    (Stage.RCPT, 450, "4.7.1 Error: too many recipients from 127.0.0.1", "rate"),
    (Stage.DOT, 454, "Throttling failure: Maximum sending rate exceeded.", "rate"),
    (Stage.DOT, 454, "Throttling failure: Daily message quota exceeded.", "rate"),
    (Stage.MAIL, 451, "4.7.500 Server busy. Please try again later", "rate"),
    (Stage.MAIL, 450, "4.7.0 Temporarily refused", "rate"),
    # The session itself: TLS, AUTH, the relay unreachable.
    (Stage.HELO, 454, "4.7.0 Temporary authentication failure", "session"),
    (Stage.HELO, 454, "4.7.0 TLS not available due to local problem", "session"),
    (Stage.CONNECT, 0, "[Errno 111] Connection refused", "session"),
    (Stage.HELO, 0, "TLS: certificate verify failed", "session"),
    (Stage.MAIL, 421, "4.4.2 Timeout exceeded", "session"),
    (Stage.MAIL, 530, "5.7.0 Authentication required", "session"),
    # A lost connection mid-session is no limit; a 503 after a refused MAIL adds nothing.
    (Stage.MAIL, 0, "connection closed by server", "lost"),
    (Stage.DATA, 503, "5.5.1 Error: need RCPT command", "protocol"),
    (Stage.RCPT, 503, "5.5.1 Error: need MAIL command", "protocol"),
    # About a recipient, a domain or the message: none of the relay's business.
    (Stage.RCPT, 550, "5.1.1 User unknown", None),
    (Stage.RCPT, 450, "4.2.0 Recipient address rejected: try again later", None),
    (Stage.RCPT, 450, "4.7.1 Greylisted, see http://postgrey", None),
    (Stage.DOT, 552, "5.3.4 Message size exceeds fixed limit", None),
    (Stage.DOT, 250, "2.0.0 Ok: queued as 4F2", None),
]
# fmt: on


@pytest.mark.parametrize(("stage", "code", "text", "trouble"), RELAY_CASES)
def test_relay_trouble_table(stage: Stage, code: int, text: str, trouble: str | None) -> None:
    from distributor.mail.outcomes import relay_trouble

    found = relay_trouble(Reply(stage, code, text))
    assert (found.value if found else None) == trouble


@pytest.mark.parametrize(
    ("stage", "code", "text", "key"),
    [
        (Stage.RCPT, 451, "4.3.0 <a@b>: Temporary lookup failure", "451 4.3.0"),
        (Stage.RCPT, 450, "4.2.0 Mailbox busy", "450 4.2.0"),
        # Not a recipient's deferral: a domain's throttle, the relay's, or no deferral at all.
        (Stage.RCPT, 451, "4.7.1 Greylisted", None),
        (Stage.RCPT, 452, "4.3.1 Insufficient system storage", None),
        (Stage.RCPT, 550, "5.1.1 User unknown", None),
        (Stage.DOT, 451, "4.3.0 Error: queue file write error", None),
        (Stage.RCPT, 250, "2.1.5 Ok", None),
    ],
)
def test_repeated_deferral_keys_only_a_recipients_deferral_at_rcpt(
    stage: Stage, code: int, text: str, key: str | None
) -> None:
    assert repeated_deferral(Reply(stage, code, text)) == key
