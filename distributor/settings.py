"""One typed, frozen settings object built from the environment.

Nothing else in the code base reads ``os.environ``: the app factory builds a
``Settings`` and passes it down.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_SECRET_KEY = "dev-insecure-change-me"  # noqa: S105 - refused in production
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(RuntimeError):
    """The environment describes a configuration we refuse to run with."""


@lru_cache(maxsize=1)
def _host_fqdn() -> str:
    return socket.getfqdn()


def default_helo_name(from_domain: str) -> str:
    """The host's fully qualified name; the From domain when the host has no dotted name."""
    fqdn = _host_fqdn().strip().rstrip(".")
    if "." in fqdn and not fqdn.lower().startswith("localhost"):
        return fqdn
    return from_domain


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _derived(source: Mapping[str, str], values: dict[str, Any]) -> dict[str, Any]:
    """Settings that follow others unless set themselves.

    Changing ``DEV_SMTP_PORT`` or ``PORT`` alone must not leave mail pointing at the old
    inbox or links pointing at the old web port.
    """
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}

    def value(name: str) -> Any:
        return values.get(name, defaults[name])

    derived: dict[str, Any] = {}
    if value("smtp_relay_profile"):
        # A named relay's limits (docs/RELAYS.md); each SMTP_RELAY_* set explicitly wins.
        from distributor.relay_profiles import profile

        try:
            limits = profile(str(value("smtp_relay_profile")))
        except ValueError as exc:
            raise SettingsError(f"SMTP_RELAY_PROFILE: {exc}") from exc
        names = (
            ("smtp_relay_connections", "SMTP_RELAY_CONNECTIONS"),
            ("smtp_relay_rate_per_second", "SMTP_RELAY_RATE"),
            ("smtp_relay_messages_per_connection", "SMTP_RELAY_MESSAGES_PER_CONNECTION"),
        )
        for (name, env), from_profile in zip(names, limits, strict=True):
            if env not in source and name not in values:
                derived[name] = from_profile
    if "SMTP_URL" not in source and "smtp_url" not in values:
        derived["smtp_url"] = f"smtp://{value('dev_smtp_host')}:{value('dev_smtp_port')}"
    if (
        "PUBLIC_BASE_URL" not in source
        and "public_base_url" not in values
        and value("env") == "development"
    ):
        derived["public_base_url"] = f"http://127.0.0.1:{value('web_port')}"
    return derived


@dataclass(frozen=True)
class Settings:
    """Every setting the service has; each field maps to one environment variable."""

    env: str = field(default="development", metadata={"env": "DISTRIBUTOR_ENV"})
    secret_key: str = field(default=DEFAULT_SECRET_KEY, metadata={"env": "SECRET_KEY"})
    # Earlier keys, comma-separated: still accepted by every signer, never used to sign.
    secret_key_fallbacks: str = field(default="", metadata={"env": "SECRET_KEY_FALLBACKS"})
    data_dir: str = field(default=str(PROJECT_ROOT / "var"), metadata={"env": "DATA_DIR"})
    database_url: str = field(default="", metadata={"env": "DATABASE_URL"})
    redis_url: str = field(default="", metadata={"env": "REDIS_URL"})
    # Unset SMTP_URL means the dev inbox at DEV_SMTP_HOST:DEV_SMTP_PORT, and unset
    # PUBLIC_BASE_URL in development means this machine at PORT (see ``from_env``); the values
    # here are what a bare ``Settings()`` gets.
    smtp_url: str = field(default="smtp://127.0.0.1:8025", metadata={"env": "SMTP_URL"})
    public_base_url: str = field(
        default="http://127.0.0.1:5000", metadata={"env": "PUBLIC_BASE_URL"}
    )
    org_name: str = field(default="Harbour Light Foundation", metadata={"env": "ORG_NAME"})
    org_tagline: str = field(
        default="Independent reporting on coastal communities and climate resilience.",
        metadata={"env": "ORG_TAGLINE"},
    )
    org_postal_address: str = field(
        default="Harbour Light Foundation, 14 Quay Street, Portmere PM1 4QS, United Kingdom",
        metadata={"env": "ORG_POSTAL_ADDRESS"},
    )
    org_timezone: str = field(default="Europe/London", metadata={"env": "ORG_TIMEZONE"})
    press_email: str = field(default="press@harbourlight.example", metadata={"env": "PRESS_EMAIL"})
    mail_from: str = field(default="news@harbourlight.example", metadata={"env": "MAIL_FROM"})
    bounce_domain: str = field(
        default="bounces.harbourlight.example", metadata={"env": "BOUNCE_DOMAIN"}
    )
    dev_smtp_host: str = field(default="127.0.0.1", metadata={"env": "DEV_SMTP_HOST"})
    dev_smtp_port: int = field(default=8025, metadata={"env": "DEV_SMTP_PORT"})
    dev_inbox_enabled: bool = field(default=True, metadata={"env": "DEV_INBOX"})
    web_port: int = field(default=5000, metadata={"env": "PORT"})
    log_level: str = field(default="INFO", metadata={"env": "LOG_LEVEL"})
    log_json: bool = field(default=False, metadata={"env": "LOG_JSON"})
    login_rate_limit: str = field(default="10 per minute", metadata={"env": "LOGIN_RATE_LIMIT"})
    login_max_failures: int = field(default=5, metadata={"env": "LOGIN_MAX_FAILURES"})
    login_lockout_minutes: int = field(default=15, metadata={"env": "LOGIN_LOCKOUT_MINUTES"})
    require_admin_mfa: bool = field(default=False, metadata={"env": "REQUIRE_ADMIN_MFA"})
    require_four_eyes: bool = field(default=False, metadata={"env": "REQUIRE_FOUR_EYES"})
    # -- staff sessions and security headers (see distributor/accounts/sessions.py) -------------
    session_idle_minutes: int = field(default=60, metadata={"env": "SESSION_IDLE_MINUTES"})
    session_max_hours: int = field(default=12, metadata={"env": "SESSION_MAX_HOURS"})
    # How many reverse proxies in front of the app set X-Forwarded-For/-Proto (0: trust none).
    proxy_fix_x_for: int = field(default=0, metadata={"env": "PROXY_FIX_X_FOR"})
    # Host names the app answers to, comma-separated (default in production: the host of
    # PUBLIC_BASE_URL); any other Host header is refused with 400.
    trusted_hosts: str = field(default="", metadata={"env": "TRUSTED_HOSTS"})
    # -- delivery engine (see distributor/delivery) -------------------------------------------
    delivery_lifetime_hours: int = field(default=24, metadata={"env": "DELIVERY_LIFETIME_HOURS"})
    delivery_retry_base_seconds: int = field(
        default=300, metadata={"env": "DELIVERY_RETRY_BASE_SECONDS"}
    )
    delivery_retry_max_seconds: int = field(
        default=4000, metadata={"env": "DELIVERY_RETRY_MAX_SECONDS"}
    )
    delivery_batch_size: int = field(default=1000, metadata={"env": "DELIVERY_BATCH_SIZE"})
    # A claim whose heartbeat (moved every few seconds by its batch) is older than this
    # belongs to a dead worker and is recovered.
    delivery_claim_timeout_seconds: int = field(
        default=20, metadata={"env": "DELIVERY_CLAIM_TIMEOUT_SECONDS"}
    )
    delivery_rate_per_second: int = field(
        default=10000, metadata={"env": "DELIVERY_RATE_PER_SECOND"}
    )
    delivery_domain_rate_per_second: int = field(
        default=200, metadata={"env": "DELIVERY_DOMAIN_RATE_PER_SECOND"}
    )
    delivery_domain_concurrency: int = field(
        default=20, metadata={"env": "DELIVERY_DOMAIN_CONCURRENCY"}
    )
    delivery_domain_backoff_seconds: int = field(
        default=300, metadata={"env": "DELIVERY_DOMAIN_BACKOFF_SECONDS"}
    )
    delivery_parallel_batches: int = field(default=8, metadata={"env": "DELIVERY_PARALLEL_BATCHES"})
    # The same permanent content or policy refusal (5.3.x, 5.6.x, 5.7.x) for this many
    # recipients in a row pauses the send with the reason; the same transient refusal of
    # recipients at RCPT (451 4.3.0) that many in a row pauses the relay (0: never).
    delivery_pause_after_same_refusals: int = field(
        default=5, metadata={"env": "DELIVERY_PAUSE_AFTER_SAME_REFUSALS"}
    )
    delivery_connections_per_batch: int = field(
        default=8, metadata={"env": "DELIVERY_CONNECTIONS_PER_BATCH"}
    )
    # -- the SMTP relay's own limits (see distributor/delivery/relaystate.py, docs/RELAYS.md) --
    # A named set of the values below (ses, sendgrid, mailgun, postmark, postfix); each
    # SMTP_RELAY_* set explicitly overrides the profile's value.
    smtp_relay_profile: str = field(default="", metadata={"env": "SMTP_RELAY_PROFILE"})
    # Most connections to one relay from every worker together (the adaptive state lowers
    # it); 0 = DELIVERY_PARALLEL_BATCHES x DELIVERY_CONNECTIONS_PER_BATCH.
    smtp_relay_connections: int = field(default=0, metadata={"env": "SMTP_RELAY_CONNECTIONS"})
    # Messages per second through one relay for every worker together; 0 = no limit of ours.
    smtp_relay_rate_per_second: int = field(default=0, metadata={"env": "SMTP_RELAY_RATE"})
    # Open a new connection after this many messages (SendGrid: 5,000); 0 = no limit.
    smtp_relay_messages_per_connection: int = field(
        default=0, metadata={"env": "SMTP_RELAY_MESSAGES_PER_CONNECTION"}
    )
    smtp_relay_backoff_seconds: int = field(
        default=2, metadata={"env": "SMTP_RELAY_BACKOFF_SECONDS"}
    )
    smtp_relay_max_backoff_seconds: int = field(
        default=120, metadata={"env": "SMTP_RELAY_MAX_BACKOFF_SECONDS"}
    )
    smtp_relay_recover_seconds: int = field(
        default=5, metadata={"env": "SMTP_RELAY_RECOVER_SECONDS"}
    )
    subscribe_rate_limit: str = field(
        default="5 per minute;30 per hour", metadata={"env": "SUBSCRIBE_RATE_LIMIT"}
    )
    email_check_deliverability: bool = field(
        default=False, metadata={"env": "EMAIL_CHECK_DELIVERABILITY"}
    )
    import_max_bytes: int = field(default=20 * 1024 * 1024, metadata={"env": "IMPORT_MAX_BYTES"})
    embed_frame_ancestors: str = field(default="*", metadata={"env": "EMBED_FRAME_ANCESTORS"})
    rate_limits_enabled: bool = field(default=True, metadata={"env": "RATE_LIMITS_ENABLED"})
    # -- embargo room (see distributor/embargo) ---------------------------------------------
    embargo_probation_days: int = field(default=180, metadata={"env": "EMBARGO_PROBATION_DAYS"})
    # -- release mail rendering, DKIM and digests (see distributor/delivery/rendering.py) ----------
    dkim_selector: str = field(default="", metadata={"env": "DKIM_SELECTOR"})
    dkim_private_key_path: str = field(default="", metadata={"env": "DKIM_PRIVATE_KEY_PATH"})
    dkim_domain: str = field(default="", metadata={"env": "DKIM_DOMAIN"})
    # Our name in EHLO (RFC 5321 4.1.4: a fully qualified domain name, never "localhost").
    smtp_helo_name: str = field(default="", metadata={"env": "SMTP_HELO_NAME"})
    digest_hour: int = field(default=8, metadata={"env": "DIGEST_HOUR"})
    dns_timeout_seconds: int = field(default=3, metadata={"env": "DNS_TIMEOUT_SECONDS"})

    # -- bounces and complaints (see distributor/bounces) ---------------------------------------
    bounce_smtp_host: str = field(default="127.0.0.1", metadata={"env": "BOUNCE_SMTP_HOST"})
    bounce_smtp_port: int = field(default=8026, metadata={"env": "BOUNCE_SMTP_PORT"})
    bounce_soft_threshold: int = field(default=3, metadata={"env": "BOUNCE_SOFT_THRESHOLD"})
    bounce_soft_window_days: int = field(default=7, metadata={"env": "BOUNCE_SOFT_WINDOW_DAYS"})
    bounce_raw_retention_days: int = field(
        default=30, metadata={"env": "BOUNCE_RAW_RETENTION_DAYS"}
    )
    bounce_mailbox_url: str = field(default="", metadata={"env": "BOUNCE_MAILBOX_URL"})
    bounce_webhook_max_age_seconds: int = field(
        default=900, metadata={"env": "BOUNCE_WEBHOOK_MAX_AGE_SECONDS"}
    )
    ses_sns_topic_arns: str = field(default="", metadata={"env": "SES_SNS_TOPIC_ARNS"})
    postmark_webhook_token: str = field(default="", metadata={"env": "POSTMARK_WEBHOOK_TOKEN"})
    sendgrid_webhook_public_key: str = field(
        default="", metadata={"env": "SENDGRID_WEBHOOK_PUBLIC_KEY"}
    )
    mailgun_webhook_signing_key: str = field(
        default="", metadata={"env": "MAILGUN_WEBHOOK_SIGNING_KEY"}
    )

    # -- media library (see distributor/media) ------------------------------------------------
    # Every stored file (lead photos, attachments, logos, the library). Empty: files under
    # DATA_DIR/media. Or s3://bucket?endpoint=...&region=... for an
    # S3-compatible store shared by every web machine and worker.
    media_storage_url: str = field(default="", metadata={"env": "MEDIA_STORAGE_URL"})
    # The checklist warns about an asset whose rights end within this many days of a send.
    media_rights_warn_days: int = field(default=7, metadata={"env": "MEDIA_RIGHTS_WARN_DAYS"})
    # An asset's owner is mailed this many days before its rights end (0: never).
    media_expiry_notice_days: int = field(default=14, metadata={"env": "MEDIA_EXPIRY_NOTICE_DAYS"})

    # -- what operators watch (see distributor/health/metrics.py) --------------------------------
    metrics_token: str = field(default="", metadata={"env": "METRICS_TOKEN"})

    # -- derived values -------------------------------------------------------------------------

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def signing_keys(self) -> tuple[str, ...]:
        """The current secret key first, then the fallbacks a rotation keeps valid."""
        fallbacks = [k.strip() for k in self.secret_key_fallbacks.split(",") if k.strip()]
        return (self.secret_key, *fallbacks)

    @property
    def trusted_host_list(self) -> list[str]:
        """Hosts to accept; empty means any (development and tests without TRUSTED_HOSTS)."""
        configured = [h.strip().lower() for h in self.trusted_hosts.split(",") if h.strip()]
        if configured or not self.is_production:
            return configured
        from urllib.parse import urlsplit

        return [urlsplit(self.public_base_url).hostname or ""]

    @property
    def is_testing(self) -> bool:
        return self.env == "test"

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with the driver we ship (psycopg 3) made explicit."""
        url = self.database_url or f"sqlite:///{Path(self.data_dir) / 'distributor.db'}"
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://") :]
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        return url

    @property
    def is_postgres(self) -> bool:
        return self.sqlalchemy_url.startswith("postgresql")

    @property
    def broker_url(self) -> str:
        """Redis when configured; otherwise kombu's SQLAlchemy transport on a SQLite file."""
        if self.redis_url:
            return self.redis_url
        return f"sqla+sqlite:///{Path(self.data_dir) / 'broker.db'}"

    @property
    def limiter_storage_uri(self) -> str:
        return self.redis_url or "memory://"

    @property
    def dev_smtp_url(self) -> str:
        return f"smtp://{self.dev_smtp_host}:{self.dev_smtp_port}"

    @property
    def uses_dev_inbox(self) -> bool:
        """Mail goes to the development inbox that ``make run`` starts."""
        return self.dev_inbox_enabled and self.smtp_url.rstrip("/") == self.dev_smtp_url

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.org_timezone)

    @property
    def from_domain(self) -> str:
        return self.mail_from.rpartition("@")[2]

    @property
    def helo_name(self) -> str:
        """``SMTP_HELO_NAME``, else the host's FQDN, else (no dot in it) the From domain."""
        return self.smtp_helo_name or default_helo_name(self.from_domain)

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def env_vars(cls) -> dict[str, str]:
        """Environment variable name -> field name."""
        return {f.metadata["env"]: f.name for f in dataclasses.fields(cls)}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``environ`` (default: the process environment), then validate."""
        source = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = f.metadata["env"]
            if name not in source:
                continue
            raw = source[name]
            try:
                if f.type in ("bool", bool):
                    values[f.name] = _bool(raw)
                elif f.type in ("int", int):
                    values[f.name] = int(raw)
                else:
                    values[f.name] = raw
            except ValueError as exc:
                raise SettingsError(f"{name}: {exc}") from exc
        values.update(overrides)
        # The dev inbox shows every mail and every token in it: in production it is off unless
        # DEV_INBOX says otherwise.
        if values.get("env") == "production" and "dev_inbox_enabled" not in values:
            values["dev_inbox_enabled"] = False
        values.update(_derived(source, values))
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.env not in {"development", "production", "test"}:
            raise SettingsError("DISTRIBUTOR_ENV must be development, production or test")
        if self.is_production and self.secret_key == DEFAULT_SECRET_KEY:
            raise SettingsError(
                "SECRET_KEY is the built-in development default; refusing to start in production"
            )
        if self.is_production and len(self.secret_key) < 32:
            raise SettingsError("SECRET_KEY must be at least 32 characters in production")
        try:
            ZoneInfo(self.org_timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise SettingsError(f"ORG_TIMEZONE: unknown time zone {self.org_timezone!r}") from exc
        if "@" not in self.mail_from:
            raise SettingsError("MAIL_FROM must be an email address")
        if not self.public_base_url.startswith(("http://", "https://")):
            raise SettingsError("PUBLIC_BASE_URL must start with http:// or https://")
        if self.media_storage_url and not self.media_storage_url.startswith(("s3://", "file://")):
            raise SettingsError("MEDIA_STORAGE_URL must be empty, file:///path or s3://bucket")
        if not 1 <= self.delivery_connections_per_batch <= 64:
            raise SettingsError("DELIVERY_CONNECTIONS_PER_BATCH must be between 1 and 64")


def current_settings() -> Settings:
    """The running app's settings, as its factory built them (inside an app context)."""
    from flask import current_app

    settings: Settings = current_app.extensions["distributor.settings"]
    return settings
