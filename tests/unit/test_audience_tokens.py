"""Mail-link tokens: signed, purpose-bound, and the confirm token expires."""

from __future__ import annotations

import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from distributor.audience import tokens
from distributor.settings import Settings

SETTINGS = Settings(env="test", secret_key="k" * 40)


def test_round_trips() -> None:
    payload = tokens.load_confirm_token(
        SETTINGS, tokens.confirm_token(SETTINGS, 7, [3, 1, 3], "v1")
    )
    assert payload == tokens.ConfirmPayload(7, [1, 3], "v1", None)
    assert tokens.load_preferences_token(SETTINGS, tokens.preferences_token(SETTINGS, 7)) == 7
    assert tokens.load_unsubscribe_token(SETTINGS, tokens.unsubscribe_token(SETTINGS, 7)) == 7


def test_purposes_are_separated() -> None:
    prefs = tokens.preferences_token(SETTINGS, 7)
    unsub = tokens.unsubscribe_token(SETTINGS, 7)
    confirm = tokens.confirm_token(SETTINGS, 7, [1])
    assert len({prefs, unsub, confirm}) == 3
    with pytest.raises(tokens.InvalidToken):
        tokens.load_unsubscribe_token(SETTINGS, prefs)
    with pytest.raises(tokens.InvalidToken):
        tokens.load_preferences_token(SETTINGS, unsub)
    with pytest.raises(tokens.InvalidToken):
        tokens.load_confirm_token(SETTINGS, prefs)
    with pytest.raises(tokens.InvalidToken):
        tokens.load_preferences_token(SETTINGS, confirm)


def _signed_days_ago(days: float, purpose: str, payload: object) -> str:
    class EarlierSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - days * 86400)

    serializer = URLSafeTimedSerializer(SETTINGS.secret_key, salt=purpose, signer=EarlierSigner)
    return str(serializer.dumps(payload))


def test_confirm_token_expires_after_seven_days() -> None:
    payload = {"j": 7, "b": [1], "v": "v1"}
    fresh = _signed_days_ago(6.9, tokens.PURPOSE_CONFIRM, payload)
    assert tokens.load_confirm_token(SETTINGS, fresh).journalist_id == 7
    stale = _signed_days_ago(7.1, tokens.PURPOSE_CONFIRM, payload)
    with pytest.raises(tokens.ExpiredToken):
        tokens.load_confirm_token(SETTINGS, stale)


def test_preference_and_unsubscribe_links_keep_working() -> None:
    old = _signed_days_ago(900, tokens.PURPOSE_UNSUBSCRIBE, 7)
    assert tokens.load_unsubscribe_token(SETTINGS, old) == 7


@pytest.mark.parametrize("bad", ["", "garbage", "a.b.c"])
def test_tampered_or_malformed_tokens_are_refused(bad: str) -> None:
    with pytest.raises(tokens.InvalidToken):
        tokens.load_preferences_token(SETTINGS, bad)
    token = tokens.unsubscribe_token(SETTINGS, 7)
    with pytest.raises(tokens.InvalidToken):
        tokens.load_unsubscribe_token(
            SETTINGS, token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        )


def test_another_secret_cannot_read_them() -> None:
    other = Settings(env="test", secret_key="z" * 40)
    with pytest.raises(tokens.InvalidToken):
        tokens.load_preferences_token(other, tokens.preferences_token(SETTINGS, 7))
