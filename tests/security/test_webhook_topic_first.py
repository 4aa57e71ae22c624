"""Finding 14: /webhooks/ses checks the topic before it fetches any certificate."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.functional.test_webhooks import (  # noqa: F401  (fixtures)
    FakeFetcher,
    _post_sns,
    fetcher,
    hook,
    ses_bounce,
    sns_message,
    webhook_app,
)


def test_a_foreign_topic_makes_us_fetch_nothing(hook: FlaskClient, fetcher: FakeFetcher) -> None:  # noqa: F811
    message = sns_message(
        ses_bounce("sesToken0002", "someone@example.org"),
        TopicArn="arn:aws:sns:eu-west-1:999999999999:attacker-topic",
    )
    assert _post_sns(hook, message).status_code == 403
    assert fetcher.fetched == []
