"""Imports every domain's models so that ``Base.metadata`` knows all tables (Alembic, tests)."""

from distributor.accounts import models as accounts_models
from distributor.api import models as api_models
from distributor.audience import models as audience_models
from distributor.bounces import models as bounces_models
from distributor.db import Base
from distributor.delivery import models as delivery_models
from distributor.devinbox import models as devinbox_models
from distributor.embargo import models as embargo_models
from distributor.media import models as media_models
from distributor.notifications import models as notifications_models
from distributor.organisation import models as organisation_models
from distributor.releases import models as releases_models
from distributor.reports import models as reports_models
from distributor.tracking import models as tracking_models

metadata = Base.metadata

__all__ = [
    "accounts_models",
    "api_models",
    "audience_models",
    "bounces_models",
    "delivery_models",
    "devinbox_models",
    "embargo_models",
    "media_models",
    "metadata",
    "notifications_models",
    "organisation_models",
    "releases_models",
    "reports_models",
    "tracking_models",
]
