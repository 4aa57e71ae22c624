"""Purpose-bound signed tokens for the links we put in mails.

Each purpose has its own salt, so a preference token cannot be replayed as an unsubscribe or
confirm token. The serializers are built once per secret: bulk sends compute two tokens for
every recipient.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from distributor.errors import DomainError
from distributor.settings import Settings

CONFIRM_MAX_AGE = 7 * 24 * 3600
# Preference and unsubscribe links live in mails people keep for years; they never expire
# (the address can still be suppressed or erased, which ends what they can do).
PURPOSE_CONFIRM = "audience.confirm"
PURPOSE_PREFERENCES = "audience.preferences"
PURPOSE_UNSUBSCRIBE = "audience.unsubscribe"


class InvalidToken(DomainError):
    """A link token that is malformed, tampered with, expired or meant for something else."""

    status_code = 400


class ExpiredToken(InvalidToken):
    status_code = 410


@lru_cache(maxsize=32)
def _serializer(keys: tuple[str, ...], purpose: str) -> URLSafeTimedSerializer:
    """``keys``: the current secret first, then fallbacks (``Settings.signing_keys``).

    itsdangerous signs with the last key of a list and accepts any of them, so links signed
    before a ``SECRET_KEY`` rotation keep working while ``SECRET_KEY_FALLBACKS`` names the old key.
    """
    return URLSafeTimedSerializer(list(reversed(keys)), salt=purpose)


def _dump(settings: Settings, purpose: str, payload: Any) -> str:
    token: str = _serializer(settings.signing_keys, purpose).dumps(payload)
    return token


def _load(settings: Settings, purpose: str, token: str, max_age: int | None) -> Any:
    try:
        return _serializer(settings.signing_keys, purpose).loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise ExpiredToken("This link has expired. Please ask for a new one.") from exc
    except BadSignature as exc:
        raise InvalidToken(
            "This link is not valid. It may have been cut short or altered."
        ) from exc


class ConfirmPayload(NamedTuple):
    journalist_id: int
    beat_ids: list[int]
    text_version: str  # the version of the form text the person agreed to
    request_id: int | None  # the confirmation request the link was mailed for (single use)


def confirm_token(
    settings: Settings,
    journalist_id: int,
    beat_ids: list[int],
    text_version: str = "",
    *,
    request_id: int | None = None,
) -> str:
    """A token that confirms ``journalist_id``'s subscription to ``beat_ids`` (double opt-in)."""
    payload: dict[str, Any] = {"j": journalist_id, "b": sorted(set(beat_ids)), "v": text_version}
    if request_id is not None:
        payload["r"] = request_id
    return _dump(settings, PURPOSE_CONFIRM, payload)


def load_confirm_token(
    settings: Settings, token: str, max_age: int = CONFIRM_MAX_AGE
) -> ConfirmPayload:
    """Return the payload or raise ``InvalidToken`` / ``ExpiredToken``."""
    payload = _load(settings, PURPOSE_CONFIRM, token, max_age)
    try:
        request_id = payload.get("r")
        return ConfirmPayload(
            int(payload["j"]),
            [int(b) for b in payload["b"]],
            str(payload.get("v", "")),
            int(request_id) if request_id is not None else None,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidToken("This link is not valid.") from exc


def preferences_token(settings: Settings, journalist_id: int) -> str:
    """A long-lived token opening ``journalist_id``'s preference centre."""
    return _dump(settings, PURPOSE_PREFERENCES, journalist_id)


def unsubscribe_token(settings: Settings, journalist_id: int) -> str:
    """A long-lived token for the unsubscribe page and the RFC 8058 one-click POST."""
    return _dump(settings, PURPOSE_UNSUBSCRIBE, journalist_id)


def _load_id(settings: Settings, purpose: str, token: str) -> int:
    payload = _load(settings, purpose, token, None)
    if not isinstance(payload, int) or isinstance(payload, bool):
        raise InvalidToken("This link is not valid.")
    return payload


def load_preferences_token(settings: Settings, token: str) -> int:
    """Return the journalist id of a preferences token or raise ``InvalidToken``."""
    return _load_id(settings, PURPOSE_PREFERENCES, token)


def load_unsubscribe_token(settings: Settings, token: str) -> int:
    """Return the journalist id of an unsubscribe token or raise ``InvalidToken``."""
    return _load_id(settings, PURPOSE_UNSUBSCRIBE, token)
