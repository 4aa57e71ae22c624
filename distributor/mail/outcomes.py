"""What an SMTP reply or a delivery report means: the one place that decides it.

Everything that reads a server's answer asks this module: the bulk sender for each reply of the
conversation, the bounce pipeline for each DSN or ESP event, and the reports when they sort
failures into hard bounces, soft bounces and policy rejections. Nothing else interprets reply
codes or RFC 3463 status codes.

A verdict has two parts:

* ``outcome``: what happens to the delivery row (delivered, deferred, failed, in doubt);
* ``subject``: whom the answer is about, and so what to act on. Only the *recipient* can be
  suppressed; a refusal of our envelope sender, of our host, of the message's size or content,
  or a relay's throttling is never the recipient's fault and never suppresses anyone.

Sources:

* RFC 5321 section 4.2 (reply classes: 2yz done, 4yz transient, 5yz permanent), 4.5.3.1.10
  (``552`` at RCPT is transient), 3.8 (``421`` closes the channel: about the session, not the
  message), and 4.1.1.3 (the stage decides who a refusal is about: at connect, EHLO and MAIL
  FROM the server has not yet seen any recipient).
* RFC 3463 enhanced status codes: subject ``1`` addressing (``5.1.7``/``5.1.8`` name the
  *sender's* address), ``2`` mailbox, ``3`` mail system, ``4`` network and routing, ``5``
  protocol, ``6`` message content, ``7`` security and policy.
* RFC 1047: a connection lost after the final dot and before its reply leaves the outcome
  unknown; lost at any earlier stage, the message was never handed over.
* RFC 1870 (SIZE): ``552`` with ``5.3.4`` names the message's size.
* Observed wording of real servers for "no such user" where they give no or a vague enhanced
  code (Postfix, Exim, Sendmail, qmail, Exchange, Lotus Domino), as Mailman's flufl.bounce and
  listmonk read them.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Stage(enum.StrEnum):
    """Where in the conversation the answer came (RFC 5321 section 3)."""

    CONNECT = "connect"  # TCP connect and the greeting
    TLS = "tls"  # the relay's certificate or TLS version refused by us (RFC 3207, RFC 8446)
    HELO = "helo"  # EHLO/HELO, STARTTLS, AUTH: the session, before any message
    MAIL = "mail"  # MAIL FROM: our envelope sender and the message's declared size
    RCPT = "rcpt"  # RCPT TO: the recipient
    DATA = "data"  # the DATA command (354 expected)
    DOT = "dot"  # the reply to the final "." of the message
    REPORT = "report"  # after acceptance: a DSN (RFC 3464) or an ESP's bounce event


class Outcome(enum.StrEnum):
    """What happens to the delivery."""

    DELIVERED = "delivered"
    DEFERRED = "deferred"  # transient: try again later; the row keeps its place
    FAILED = "failed"  # permanent for this message to this recipient
    IN_DOUBT = "in_doubt"  # the final dot went out and no reply came: never resent by itself


class Subject(enum.StrEnum):
    """Whom the answer is about, and so what a caller acts on."""

    NONE = "none"  # delivered: nothing to act on
    RECIPIENT = "recipient"  # the mailbox: suppress (hard) or score (soft)
    DOMAIN = "domain"  # the recipient's domain: slow down that domain only
    SENDER = "sender"  # us: our envelope sender, authentication, reputation, policy
    MESSAGE = "message"  # this message: its size or content, the same for every recipient
    RELAY = "relay"  # the relay or our session with it: slow down or pause the relay


class RelayTrouble(enum.StrEnum):
    """What a reply about the relay asks of us, for every worker (see ``relay_trouble``)."""

    CONNECTIONS = "connections"  # too many connections from us: open fewer, pause briefly
    RATE = "rate"  # too much mail from us, an ESP's throttle: a lower shared rate
    SESSION = "session"  # TLS, AUTH, service unavailable: pause the relay, back off
    LOST = "lost"  # the connection broke with no reply: reconnect; no slowdown by itself
    PROTOCOL = "protocol"  # a sequence error (503 after a refused MAIL): adds nothing


class BounceKind(enum.StrEnum):
    """How a failure counts in bounce handling and in reports."""

    HARD = "hard"  # the address is gone: suppress at once
    SOFT = "soft"  # may pass later: scores toward the soft threshold
    POLICY = "policy"  # a rejection of us, not of the address: flagged, never suppresses
    MESSAGE = "message"  # the message's size or content: neither the address nor a bounce score
    RELAY = "relay"  # our relay or session: says nothing about the address


@dataclass(frozen=True)
class Reply:
    """One answer as the server gave it; ``code`` 0 when there was no reply at all."""

    stage: Stage
    code: int
    text: str = ""

    @property
    def enhanced(self) -> str | None:
        return enhanced_status(self.text)

    @property
    def is_positive(self) -> bool:
        """2yz or 3yz (RFC 5321 4.2.1): the server goes on with us."""
        return 200 <= self.code < 400

    def __str__(self) -> str:
        return f"{self.code} {self.text}"

    def describe(self, limit: int = 300) -> str:
        """``"rcpt 550 5.1.1 <x@y>: Recipient address rejected"`` for the delivery row."""
        if self.code == 0:
            return f"{self.stage.value}: {self.text or 'connection lost, no reply'}"[:limit]
        return f"{self.stage.value} {self.code} {' '.join(self.text.split())}".strip()[:limit]


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    subject: Subject
    kind: BounceKind | None = None  # None when delivered or still to be tried
    is_permanent: bool = False  # a 5yz reply: it will not pass by waiting

    @property
    def is_suppressing(self) -> bool:
        """The address is gone: stop mailing it (one hard bounce is enough)."""
        return self.kind is BounceKind.HARD

    @property
    def is_policy_rejection(self) -> bool:
        return self.kind is BounceKind.POLICY

    @property
    def is_relay_trouble(self) -> bool:
        """Slow down or pause the relay for every worker; costs the recipient no attempt."""
        return self.subject is Subject.RELAY

    @property
    def is_domain_throttle(self) -> bool:
        return self.subject is Subject.DOMAIN and self.outcome is Outcome.DEFERRED

    @property
    def stops_the_send(self) -> bool:
        """The same answer will come for every recipient: pause the send and say why.

        A permanent refusal of our envelope sender or of our session (RFC 5321 4.1.1.3: no
        recipient was named yet) must not be charged to the recipients, or one DNS outage of
        the bounce domain would suppress the whole audience.
        """
        return (
            self.is_permanent
            and self.subject in {Subject.SENDER, Subject.RELAY, Subject.MESSAGE}
            and (self.outcome is Outcome.DEFERRED)
        )


_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")

# Wording real servers use for a mailbox that does not exist, when their enhanced code is
# missing or vague (Postfix "User unknown in local recipient table", Exim "Unknown user",
# qmail "no mailbox here by that name", Exchange "RESOLVER.ADR.RecipNotFound", Domino
# "not listed in Domino Directory", Sendmail "User unknown", Gmail "does not exist").
_NO_SUCH_USER = re.compile(
    r"user(?:name)? unknown|unknown (?:user|recipient|mailbox|local[- ]part|address)"
    r"|no such (?:user|mailbox|recipient|address|account)|no mailbox here by that name"
    r"|mailbox (?:not found|unavailable|does not exist|doesn't exist|is disabled)"
    r"|(?:address|account|mailbox|user|recipient) (?:does not|doesn't) exist"
    r"|invalid (?:recipient|mailbox|address)|recipient (?:not found|unknown|invalid)"
    r"|recipnotfound|recipientnotfound|not listed in (?:the )?domino directory"
    r"|not our customer|no longer (?:active|valid|in use)|user not found|account (?:has been )?"
    r"(?:disabled|closed|deactivated)|address rejected: user unknown"
    # Yahoo "This user doesn't have a yahoo.com account", GroupWise and old Exchange
    # "The recipient name is not recognized".
    r"|user doesn't have an? [\w.-]+ account|recipient name is not recognized"
    r"|addressee unknown",
    re.IGNORECASE,
)
# Wording that names our side even under a 5.1.x code or a bare 550.
_SENDER_WORDS = re.compile(
    r"sender address rejected|sender (?:domain|address) (?:not found|rejected|unknown)"
    r"|domain of sender|sender verify failed|bad sender",
    re.IGNORECASE,
)
# Wording of a rejection of us (content filters, blocklists, authentication) under a bare code.
_POLICY_WORDS = re.compile(
    r"\bspam\b|blocked|blacklist|blocklist|listed (?:at|on|by)|reputation|\bpolicy\b|dmarc"
    r"|\bspf\b|\bdkim\b|unauthenticated",
    re.IGNORECASE,
)
_RELAY_DENIED = re.compile(
    r"relay(?:ing)? (?:access )?(?:denied|not permitted|prohibited)|not permitted to relay"
    r"|authentication required",
    re.IGNORECASE,
)
# An ESP or relay throttling our host or account, not the recipient's domain (Amazon SES
# "454 Throttling failure: Maximum sending rate exceeded", Postfix "450 4.7.1 too much mail
# from", Exchange Online "4.7.500 Server busy").
_RELAY_THROTTLE = re.compile(
    r"throttl|rate limit|sending rate|too much mail|too many (?:connections|messages|errors)"
    r"|server busy|service (?:not available|unavailable)|try again later, closing|sending quota"
    # Postfix smtpd_client_recipient_rate_limit "450 4.7.1 Error: too many recipients from".
    r"|too many recipients from",
    re.IGNORECASE,
)


def enhanced_status(text: str) -> str | None:
    """The RFC 3463 status code in a reply text (``"5.1.1"``), if there is one."""
    match = _ENHANCED.search(text or "")
    return match.group(0) if match else None


def says_no_such_user(text: str) -> bool:
    """Does this diagnostic say in words that the mailbox does not exist?"""
    return bool(text) and bool(_NO_SUCH_USER.search(text)) and not _SENDER_WORDS.search(text)


def _verdict(outcome: Outcome, subject: Subject, kind: BounceKind | None, code: int) -> Verdict:
    return Verdict(outcome, subject, kind, is_permanent=500 <= code < 600)


def classify_reply(reply: Reply) -> Verdict:
    """What one reply the server actually gave means."""
    code, stage = reply.code, reply.stage
    if code == 0:
        return classify_connection_lost(stage)
    if 200 <= code < 400:
        return Verdict(Outcome.DELIVERED, Subject.NONE)
    status = reply.enhanced or ""
    subject_digit = status.split(".")[1] if status else ""
    text = reply.text or ""

    # 421 closes the transmission channel (RFC 5321 3.8): about the session, anywhere.
    # 454 is a temporary refusal of our session (TLS, AUTH, or an ESP's throttle).
    if code in (421, 454) or (400 <= code < 500 and _RELAY_THROTTLE.search(text)):
        return _verdict(Outcome.DEFERRED, Subject.RELAY, None, code)
    if code == 530 or _RELAY_DENIED.search(text):
        # RFC 4954: authentication required; "relay access denied": our relay setup is wrong.
        return _verdict(Outcome.DEFERRED, Subject.RELAY, BounceKind.RELAY, code)

    if stage in (Stage.CONNECT, Stage.HELO):
        # No message and no recipient exist yet: whatever it is, it is about our session.
        return _verdict(Outcome.DEFERRED, Subject.RELAY, None, code)

    if stage is Stage.MAIL:
        if code == 552 or status == "5.3.4" or status == "4.3.4":
            # RFC 1870: the declared SIZE exceeds what the server takes: about the message,
            # and every copy of it is about that size. No recipient was named yet (RFC 5321
            # 4.1.1.3), so the row keeps its place and the send stops (``stops_the_send``).
            if code >= 500:
                return _verdict(Outcome.DEFERRED, Subject.MESSAGE, BounceKind.MESSAGE, code)
            return _verdict(Outcome.DEFERRED, Subject.RELAY, None, code)
        if subject_digit == "5" or code in (500, 501, 502, 503, 504, 555):
            # A syntax or sequence error in our own command: our bug or the relay's.
            return _verdict(Outcome.DEFERRED, Subject.RELAY, BounceKind.RELAY, code)
        if code >= 500:
            # 5.1.7/5.1.8, 5.7.x, or a bare 550 at MAIL FROM: our envelope sender is refused.
            return _verdict(Outcome.DEFERRED, Subject.SENDER, BounceKind.POLICY, code)
        # 4yz at MAIL: a relay-wide refusal ("450 4.7.1 too much mail from ..."), not a domain's.
        return _verdict(Outcome.DEFERRED, Subject.RELAY, None, code)

    if stage is Stage.DATA and (subject_digit == "5" or (code in (503, 554) and not status)):
        # "503 5.5.1 No valid recipients" after a refused RCPT, or a bare 554: the RCPT or MAIL
        # reply already said why; this one adds nothing about the recipient.
        return _verdict(Outcome.DEFERRED, Subject.RELAY, None, code)

    return _classify_recipient_answer(stage, code, status, text)


def _classify_recipient_answer(stage: Stage, code: int, status: str, text: str) -> Verdict:
    """RCPT, DATA, the final dot, and reports after acceptance: the recipient can be at fault."""
    klass, _, rest = status.partition(".")
    subject_digit, _, detail = rest.partition(".")
    transient = 400 <= code < 500 or (klass == "4" and not 500 <= code < 600)

    if code == 503 or (subject_digit == "5" and code in (500, 501, 502, 504)):
        # Protocol and sequence errors (pipelining after a refused MAIL): not the recipient.
        return _verdict(Outcome.DEFERRED, Subject.RELAY, None, code)
    if status in ("5.1.7", "5.1.8", "4.1.7", "4.1.8") or _SENDER_WORDS.search(text):
        outcome = Outcome.DEFERRED if transient else Outcome.FAILED
        return _verdict(outcome, Subject.SENDER, BounceKind.POLICY, code)
    if subject_digit == "7":
        if transient:
            # Greylisting and per-domain rate limits (4.7.x at RCPT or after the dot).
            return _verdict(Outcome.DEFERRED, Subject.DOMAIN, None, code)
        return _verdict(Outcome.FAILED, Subject.SENDER, BounceKind.POLICY, code)
    if transient:
        if subject_digit == "4":
            return _verdict(Outcome.DEFERRED, Subject.DOMAIN, None, code)
        if subject_digit == "3" and detail != "4" and _is_system_wide(stage, detail):
            return _verdict(Outcome.DEFERRED, Subject.RELAY, None, code)
        return _verdict(Outcome.DEFERRED, Subject.RECIPIENT, None, code)
    if code == 552 and stage is Stage.RCPT:
        # RFC 5321 4.5.3.1.10: "552 too many recipients / storage" at RCPT is transient.
        return _verdict(Outcome.DEFERRED, Subject.RECIPIENT, None, code)
    if (
        status in ("5.3.4", "5.2.3")
        or subject_digit == "6"
        or (code == 552 and not status and stage is not Stage.RCPT)
    ):
        # The message is too big or its content is refused: the same for every recipient.
        return _verdict(Outcome.FAILED, Subject.MESSAGE, BounceKind.MESSAGE, code)
    if (subject_digit == "1" or status == "5.2.1") and klass == "5":
        return _verdict(Outcome.FAILED, Subject.RECIPIENT, BounceKind.HARD, code)
    if not status and _POLICY_WORDS.search(text):
        return _verdict(Outcome.FAILED, Subject.SENDER, BounceKind.POLICY, code)
    if says_no_such_user(text):
        # "553 5.3.0 Unknown user", "550 Unknown user:", Domino's "not listed": hard in words.
        return _verdict(Outcome.FAILED, Subject.RECIPIENT, BounceKind.HARD, code)
    if subject_digit == "4":
        return _verdict(Outcome.FAILED, Subject.DOMAIN, BounceKind.SOFT, code)
    if 500 <= code < 600 or klass == "5":
        return _verdict(Outcome.FAILED, Subject.RECIPIENT, BounceKind.SOFT, code)
    # Anything else is a protocol violation by the server: try again later.
    return _verdict(Outcome.DEFERRED, Subject.RELAY, None, code)


def _is_system_wide(stage: Stage, detail: str) -> bool:
    """Is a transient mail-system reply (4.3.x, RFC 3463) about the whole relay?

    After the final dot or at DATA it is (Postfix "451 4.3.0 Error: queue file write error"),
    and so are "mail system full" (4.3.1) and "not accepting network messages" (4.3.2)
    anywhere. At RCPT any other 4.3.x answers for that one recipient ("451 4.3.0 <x>:
    Temporary lookup failure"): the relay goes on taking the others, so only that recipient
    waits. A relay that gives the same one to every recipient is caught by
    ``repeated_deferral``, which turns a run of them into relay trouble.
    """
    return stage is not Stage.RCPT or detail in ("1", "2")


# Words of a connection-count limit: Postfix smtpd_client_connection_count_limit
# "421 4.7.0 <host> Error: too many connections from <ip>", SocketLabs "421 4.4.5 Too many
# connections from your host", Exim/Dovecot "too many concurrent SMTP connections".
_CONNECTION_LIMIT = re.compile(
    r"too many (?:concurrent |simultaneous )?(?:smtp )?connections|connection (?:count )?limit"
    r"|maximum (?:number of )?connections",
    re.IGNORECASE,
)
# Words of a rate limit on our host or account: Postfix anvil "450 4.7.1 Error: too much mail
# from", "too many messages/recipients from"; Amazon SES "454 Throttling failure: Maximum
# sending rate exceeded"; Exchange Online "4.7.500 Server busy"; quota replies.
_RATE_LIMIT = re.compile(
    r"throttl|rate limit|rate exceeded|sending rate|too much mail|too many (?:messages|recipients)"
    r"|sending quota|server busy|try again later, closing|message rate",
    re.IGNORECASE,
)


def relay_trouble(reply: Reply) -> RelayTrouble | None:
    """What a reply about the relay or our host asks of every worker; None when the reply is
    about something else (a recipient, a domain, the message) or was a success.

    The stage matters (RFC 5321 4.1.1.3): at connect and EHLO no message exists yet, so a
    refusal there is about the session; a 421 at connect is how servers turn away a client
    with too many connections (RFC 5321 3.8). A 4.7.x at MAIL FROM, before any recipient, is
    a limit on our host (Postfix anvil). A connection lost without a reply says nothing about
    limits by itself, except at connect and TLS setup, where the relay is unreachable.
    """
    if not classify_reply(reply).is_relay_trouble:
        return None
    text = reply.text or ""
    if reply.code == 0:
        return (
            RelayTrouble.SESSION
            if reply.stage in (Stage.CONNECT, Stage.HELO)
            else (RelayTrouble.LOST)
        )
    if _CONNECTION_LIMIT.search(text):
        return RelayTrouble.CONNECTIONS
    if _RATE_LIMIT.search(text):
        return RelayTrouble.RATE
    if reply.code == 421 and reply.stage is Stage.CONNECT:
        return RelayTrouble.CONNECTIONS
    status = reply.enhanced or ""
    if (
        reply.code == 503
        or status.startswith(("4.5.", "5.5."))
        or (reply.stage is Stage.DATA and reply.code >= 500)
    ):
        return RelayTrouble.PROTOCOL
    if reply.stage is Stage.MAIL and 400 <= reply.code < 500 and status.startswith("4.7."):
        return RelayTrouble.RATE
    return RelayTrouble.SESSION


def classify_connection_lost(stage: Stage) -> Verdict:
    """The connection broke (or timed out) while waiting at ``stage``.

    RFC 1047: lost after the final dot, the server may have taken the message; lost earlier,
    it was never handed over and is safe to send again (no attempt is charged: it is the
    session that failed, not the recipient).
    """
    if stage is Stage.DOT:
        return Verdict(Outcome.IN_DOUBT, Subject.RELAY)
    if stage is Stage.TLS:
        # We refused the relay's certificate or TLS version: no wait will change that, only
        # a setting (``ca_file``, ``tls_min``) or the relay's certificate. Stop the send.
        return Verdict(Outcome.DEFERRED, Subject.RELAY, BounceKind.RELAY, is_permanent=True)
    return Verdict(Outcome.DEFERRED, Subject.RELAY)


def size_refusal(size: int, limit: int | None) -> Reply | None:
    """RFC 1870: a message larger than the server's advertised ``SIZE`` would be refused;
    refuse it ourselves, before sending it, in the words the server would use (552 5.3.4,
    classified like the server's own answer to ``MAIL FROM ... SIZE=``). None when it fits."""
    if not limit or size <= limit:
        return None
    return Reply(
        Stage.MAIL,
        552,
        f"5.3.4 not sent: the message is {size} bytes, over the relay's limit of {limit} "
        "bytes (its SIZE, RFC 1870)",
    )


def says_session_timed_out(reply: Reply) -> bool:
    """``421 4.4.2 Error: timeout exceeded``: the server closed a session we left idle
    (Postfix ``smtpd_timeout``); nothing about the message or the relay's health."""
    text = reply.text.lower()
    return reply.code == 421 and (reply.enhanced == "4.4.2" or "timeout" in text)


def repeated_refusal(reply: Reply) -> str | None:
    """The content or policy refusal this reply is, as a key to compare with the next
    recipient's (``"554 5.7.1"``), or None when it is not one.

    A permanent refusal of the message's content or size (5.3.x, 5.6.x) or of us by policy
    (5.7.x, or a bare 5yz that says spam/blocked) at RCPT or after the dot may be one
    recipient's server, but the same one for several recipients in a row is the message or
    our reputation: the caller pauses the send rather than try every recipient. A mailbox
    that does not exist (5.1.x, 5.2.1, "unknown user") is never one.
    """
    verdict = classify_reply(reply)
    if not verdict.is_permanent or verdict.outcome is not Outcome.FAILED:
        return None
    if verdict.kind is BounceKind.HARD:
        return None
    status = reply.enhanced or ""
    subject_digit = status.split(".")[1] if status else ""
    if subject_digit in {"3", "6", "7"} or verdict.kind in {BounceKind.MESSAGE, BounceKind.POLICY}:
        return f"{reply.code} {status}".strip()
    return None


def repeated_deferral(reply: Reply) -> str | None:
    """The transient refusal of a recipient this reply is, as a key to compare with the next
    recipient's (``"451 4.3.0"``), or None when it is not one.

    One recipient deferred at RCPT is that recipient's; the same deferral for several
    recipients in a row, with no acceptance between them, is the relay's trouble (a lookup
    table it cannot read, say): the caller pauses the relay instead of charging every
    recipient an attempt. Greylisting and per-domain limits (subject domain) are not one:
    a run of them is one domain's throttle, handled as such.
    """
    verdict = classify_reply(reply)
    if verdict.outcome is not Outcome.DEFERRED or verdict.subject is not Subject.RECIPIENT:
        return None
    if reply.stage is not Stage.RCPT:
        return None
    return f"{reply.code} {reply.enhanced or ''}".strip()


def smtputf8_not_offered(relay: str, missing: str = "SMTPUTF8") -> tuple[str, Verdict]:
    """Why a message to a mailbox with a non-ASCII local part was not sent, and what it
    means: the relay does not (or no longer) offer SMTPUTF8, and RFC 6531 forbids handing
    such a message to a server that does not (no downgrade exists for an address). Failed
    without an attempt: no server answered, so it is no bounce, and the address is not at
    fault (it was accepted while the relay offered SMTPUTF8). The enhanced code is RFC 6531's
    "non-ASCII addresses not permitted" (5.6.7)."""
    text = (
        f"not sent (5.6.7): our relay {relay} does not offer {missing}, which an address "
        "with non-ASCII characters before the @ needs (RFC 6531); it was offered when the "
        "address was accepted. Send again once the relay offers it."
    )
    return text, Verdict(Outcome.FAILED, Subject.RELAY, BounceKind.RELAY, is_permanent=True)


def classify_report(status: str, diagnostic: str = "", *, action: str = "failed") -> Verdict:
    """A delivery report after acceptance (RFC 3464 ``Action``/``Status``, or an ESP event).

    ``action`` ``delayed`` is a warning: the message is still being tried. A report with no
    status code is read from its diagnostic text; with neither, it is a soft failure.
    """
    status = (enhanced_status(status) or enhanced_status(diagnostic) or "").strip()
    code = _code_in(diagnostic)
    if action.lower() in ("delayed", "relayed", "delivered", "expanded"):
        if action.lower() == "delayed":
            return Verdict(Outcome.DEFERRED, Subject.RECIPIENT)
        return Verdict(Outcome.DELIVERED, Subject.NONE)
    if not code:
        code = 400 if status.startswith("4.") else 550
    verdict = _classify_recipient_answer(Stage.REPORT, code, status, diagnostic)
    if verdict.outcome is Outcome.DEFERRED:
        # The server gave up on it ("failed"), whatever its code's class: a soft bounce of
        # this message, unless the answer was about our relay or us.
        kind = BounceKind.POLICY if verdict.subject is Subject.SENDER else BounceKind.SOFT
        if verdict.subject is Subject.RELAY:
            kind = BounceKind.RELAY
        return Verdict(Outcome.FAILED, verdict.subject, kind, verdict.is_permanent)
    return verdict


_REPLY_CODE = re.compile(r"(?<![\d.])([245]\d\d)(?:[ -]|$)")


def _code_in(text: str) -> int:
    match = _REPLY_CODE.search(text or "")
    return int(match.group(1)) if match else 0
