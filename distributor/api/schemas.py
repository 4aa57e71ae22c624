"""What the JSON API takes and gives, declared once as pydantic models.

The same classes validate requests (``distributor.api.contract``), build responses (views
construct them, so a response cannot drift from its schema) and write ``/api/openapi.json``.
Queries are read leniently from strings (``?page=2``); bodies strictly (a JSON number is not a
string and ``true`` is not an id), as OpenAPI 3.1 with JSON Schema 2020-12 describes them.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    create_model,
)

from distributor.audience.models import LawfulBasis, SubscriptionStatus
from distributor.delivery.models import SendStatus
from distributor.releases.models import ReleaseStatus
from distributor.reports.definitions import DASHBOARD_FIGURES, EVENT_FIGURES, RELEASE_FIGURES

# A PostgreSQL ``integer``: an id beyond it names nothing (and would overflow the driver).
MAX_ID = 2**31 - 1
MAX_PER_PAGE = 200
MAX_PAGE = 1_000_000

T = TypeVar("T")


def iso(value: dt.datetime | None) -> str | None:
    """RFC 3339 in UTC with ``Z``, as every timestamp of the API."""
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None


Timestamp = Annotated[
    dt.datetime | None,
    PlainSerializer(iso, return_type=str | None),
    Field(json_schema_extra={"format": "date-time"}),
]


def _whole_number(value: Any) -> Any:
    # JSON Schema 2020-12 section 6.1.1: 2.0 is an "integer" (a number with a zero fractional
    # part); strict pydantic would refuse it. Booleans and strings stay refused.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Id = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_whole_number)]
# Text without NUL: every request carrying one is refused whole (distributor.input_guard);
# the schema says so, so the document and the server agree.
Text = Annotated[str, Field(pattern=r"^[^\x00]*$")]


class Output(BaseModel):
    """A response object: every field is always present (``null`` where it has no value)."""

    model_config = ConfigDict(frozen=True)


class Query(BaseModel):
    """Query parameters: an unknown one is refused (a misspelt filter must not silently return
    everything)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Body(BaseModel):
    """A JSON request body, validated strictly; an unknown member is refused (a misspelt field
    must not be dropped silently)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# -- queries -----------------------------------------------------------------------------------


class PageQuery(Query):
    page: int = Field(1, ge=1, le=MAX_PAGE, description="Page number, from 1")
    per_page: int = Field(50, ge=1, le=MAX_PER_PAGE, description="Items per page")


class ReleaseQuery(PageQuery):
    status: ReleaseStatus | None = None


class JournalistQuery(PageQuery):
    q: Text = Field("", max_length=200, description="Search text")
    outlet_id: Id | None = None


class SubscriptionQuery(PageQuery):
    journalist_id: Id | None = None
    beat_id: Id | None = None
    status: SubscriptionStatus | None = None


class SendQuery(PageQuery):
    status: SendStatus | None = None
    release_id: Id | None = None


class DashboardQuery(Query):
    days: int = Field(30, ge=1, le=365, description="Days back from today")


class AcceptanceQuery(PageQuery):
    journalist_id: Id | None = None


# -- bodies ------------------------------------------------------------------------------------


class NewJournalist(Body):
    # The address rules (syntax, IDNA, what we can deliver) live in distributor.mail.addresses;
    # the schema only bounds the length (RFC 5321 section 4.5.3.1).
    email: Text = Field(max_length=320, json_schema_extra={"format": "email"})
    name: Text | None = Field(None, max_length=200)
    outlet: Text | None = Field(None, max_length=200)
    role: Text | None = Field(None, max_length=120)
    country: Text | None = Field(None, max_length=2)
    language: Text | None = Field(None, max_length=12)
    lawful_basis: LawfulBasis = LawfulBasis.LEGITIMATE_INTEREST


class NewSubscription(Body):
    journalist_id: Id
    beat_id: Id


class MediaListChoice(Body):
    media_list_ids: list[Id] = Field(max_length=1000)


# -- responses ---------------------------------------------------------------------------------


class Error(Output):
    error: str


class Page(Output, Generic[T]):
    items: list[T]
    page: int
    per_page: int
    total: int
    next_page: int | None


class ReleasePage(Page[T], Generic[T]):
    release_id: int


class Me(Output):
    id: int
    email: str
    name: str
    role: str


class Release(Output):
    id: int
    title: str
    slug: str
    summary: str
    status: ReleaseStatus
    kind: str | None
    embargo_until: Timestamp
    published_at: Timestamp
    created_at: Timestamp
    updated_at: Timestamp


class MediaList(Output):
    id: int
    name: str


class ReleaseDetail(Release):
    beats: list[str]
    media_lists: list[MediaList]


class Beat(Output):
    id: int
    name: str
    slug: str
    is_public: bool


class Journalist(Output):
    id: int
    email: str | None = Field(description="null once the journalist is erased")
    name: str
    outlet: str | None
    role: str
    country: str
    language: str
    is_paused: bool
    is_tracking_allowed: bool
    lawful_basis: LawfulBasis
    created_at: Timestamp
    erased_at: Timestamp


class Subscription(Output):
    id: int
    journalist_id: int
    beat_id: int
    beat: str | None
    status: SubscriptionStatus
    source: str
    consent_at: Timestamp
    confirmed_at: Timestamp
    unsubscribed_at: Timestamp
    created_at: Timestamp


class JournalistDetail(Journalist):
    subscriptions: list[Subscription]


class Send(Output):
    id: int
    release_id: int
    status: SendStatus
    scheduled_for: Timestamp
    started_at: Timestamp
    finished_at: Timestamp
    recipient_count: int


class SendDetail(Send):
    deliveries: dict[str, int] = Field(description="Deliveries counted by status")


def _figures_model(name: str, figures: dict[str, Any]) -> type[Output]:
    """A model with one integer per report figure, each described by its definition."""
    fields: dict[str, Any] = {
        key: (int, Field(description=figure.definition)) for key, figure in figures.items()
    }
    return create_model(name, __base__=Output, **fields)


Metrics = _figures_model("Metrics", RELEASE_FIGURES)
Events = _figures_model("Events", EVENT_FIGURES)


class LinkClicks(Output):
    link_id: int
    url: str
    human_clicks: int
    human_clickers: int
    bot_clicks: int


class TimelineBucket(Output):
    starts_at: Timestamp
    human_opens: int
    machine_opens: int
    human_clicks: int
    bot_clicks: int


class ReleaseReport(Output):
    release_id: int
    totals: Metrics  # type: ignore[valid-type]
    events: Events  # type: ignore[valid-type]
    links: list[LinkClicks]
    by_beat: list[dict[str, Any]]
    by_outlet: list[dict[str, Any]]
    by_list: list[dict[str, Any]]
    timeline: list[TimelineBucket]
    definitions: dict[str, str]


class DashboardDay(Output):
    day: dt.date
    sent: int
    bounced: int
    complaints: int


class Warning(Output):
    level: str
    message: str


class Dashboard(Output):
    days: list[DashboardDay]
    sent: int = Field(description=DASHBOARD_FIGURES["sent"].definition)
    bounced: int = Field(description=DASHBOARD_FIGURES["bounced"].definition)
    complaints: int = Field(description=DASHBOARD_FIGURES["complaints"].definition)
    bounce_rate: float = Field(description=DASHBOARD_FIGURES["bounce_rate"].definition)
    complaint_rate: float = Field(description=DASHBOARD_FIGURES["complaint_rate"].definition)
    warnings: list[Warning]


class JournalistDelivery(Output):
    release_id: int
    title: str
    status: str
    sent_at: Timestamp
    human_opens: int
    machine_opens: int
    human_clicks: int
    bot_clicks: int
    first_human_open_at: Timestamp
    bounce: str | None
    complained: bool


class JournalistReport(Output):
    journalist_id: int
    deliveries: list[JournalistDelivery]


# -- embargo room ------------------------------------------------------------------------------


class EmbargoRoom(Output):
    access_id: int
    journalist_id: int
    name: str
    email: str
    status: str = Field(json_schema_extra={"enum": ["active", "revoked"]})
    delivery_status: str
    granted_at: Timestamp
    revoked_at: Timestamp
    revoked_reason: str
    accepted_version: int | None
    accepted_at: Timestamp
    entered_at: Timestamp
    views: int
    last_view_at: Timestamp
    downloads: list[str]
    refusals: int


class EmbargoEvent(Output):
    occurred_at: Timestamp
    release_id: int
    journalist_id: int
    email: str
    kind: str
    detail: str


class TermsAcceptance(Output):
    journalist_id: int
    email: str
    terms_version: int
    accepted_at: Timestamp
    release_id: int | None


class EmbargoStanding(Output):
    journalist_id: int
    email: str
    standing: str = Field(json_schema_extra={"enum": ["allowed", "not_allowed", "probation"]})
    probation_until: Timestamp
    reason: str
    updated_at: Timestamp
