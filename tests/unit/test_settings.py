from __future__ import annotations

import pytest

from distributor.settings import DEFAULT_SECRET_KEY, Settings, SettingsError


def test_defaults_run_on_embedded_services() -> None:
    settings = Settings.from_env({})
    assert settings.sqlalchemy_url.startswith("sqlite:///")
    assert settings.broker_url.startswith("sqla+sqlite:///")
    assert settings.limiter_storage_uri == "memory://"


def test_postgres_and_redis_urls_are_used_when_set() -> None:
    settings = Settings.from_env(
        {"DATABASE_URL": "postgres://u@db/x", "REDIS_URL": "redis://r:6379/0"}
    )
    assert settings.sqlalchemy_url == "postgresql+psycopg://u@db/x"
    assert settings.broker_url == "redis://r:6379/0"


def test_production_refuses_the_default_secret() -> None:
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        Settings.from_env({"DISTRIBUTOR_ENV": "production", "SECRET_KEY": DEFAULT_SECRET_KEY})


def test_production_accepts_a_real_secret() -> None:
    settings = Settings.from_env({"DISTRIBUTOR_ENV": "production", "SECRET_KEY": "x" * 40})
    assert settings.is_production


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ORG_TIMEZONE": "Mars/Olympus"}, "ORG_TIMEZONE"),
        ({"DEV_SMTP_PORT": "many"}, "DEV_SMTP_PORT"),
        ({"DEV_INBOX": "perhaps"}, "DEV_INBOX"),
        ({"MAIL_FROM": "nobody"}, "MAIL_FROM"),
    ],
)
def test_bad_values_give_clear_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        setattr(settings, "secret_key", "x")  # the frozen field the type checker guards too


def test_changing_the_ports_moves_the_dev_inbox_and_the_links_along() -> None:
    """`PORT=5101 DEV_SMTP_PORT=8125 make run` must mail the inbox it starts, link to :5101."""
    settings = Settings.from_env({"PORT": "5101", "DEV_SMTP_PORT": "8125"})
    assert settings.smtp_url == "smtp://127.0.0.1:8125"
    assert settings.public_base_url == "http://127.0.0.1:5101"
    assert settings.uses_dev_inbox


def test_explicit_values_win_over_derived_ones() -> None:
    settings = Settings.from_env(
        {
            "PORT": "5101",
            "DEV_SMTP_PORT": "8125",
            "SMTP_URL": "smtp://relay.example.org:587",
            "PUBLIC_BASE_URL": "https://news.example.org",
        }
    )
    assert settings.smtp_url == "smtp://relay.example.org:587"
    assert settings.public_base_url == "https://news.example.org"
    assert not settings.uses_dev_inbox


def test_production_does_not_guess_its_public_address_from_the_port() -> None:
    settings = Settings.from_env(
        {"DISTRIBUTOR_ENV": "production", "SECRET_KEY": "x" * 40, "PORT": "8000"}
    )
    assert settings.public_base_url == "http://127.0.0.1:5000"  # the documented default


def test_relay_profile_applies_its_limits_and_explicit_settings_win() -> None:
    from distributor.settings import Settings, SettingsError

    ses = Settings.from_env({"SMTP_RELAY_PROFILE": "ses"})
    assert (ses.smtp_relay_connections, ses.smtp_relay_rate_per_second) == (10, 14)
    own = Settings.from_env({"SMTP_RELAY_PROFILE": "ses", "SMTP_RELAY_RATE": "50"})
    assert (own.smtp_relay_connections, own.smtp_relay_rate_per_second) == (10, 50)
    sendgrid = Settings.from_env({"SMTP_RELAY_PROFILE": "SendGrid"})
    assert sendgrid.smtp_relay_messages_per_connection == 5000
    plain = Settings.from_env({})
    assert (plain.smtp_relay_connections, plain.smtp_relay_rate_per_second) == (0, 0)
    with pytest.raises(SettingsError, match="SMTP_RELAY_PROFILE"):
        Settings.from_env({"SMTP_RELAY_PROFILE": "pigeon"})
