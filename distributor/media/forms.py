from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    DateField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

from distributor.media.models import LicenceKind, MediaAsset, MediaPageSection
from distributor.media.services import AssetInput
from distributor.releases.forms import CheckboxListField

LICENCE_CHOICES = [(k.value, k.label) for k in LicenceKind]


def end_of_day_utc(day: dt.date | None, zone: ZoneInfo) -> dt.datetime | None:
    """Rights "until 31 May" last to the end of that day in the organisation's zone."""
    if day is None:
        return None
    return dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=zone).astimezone(dt.UTC)


class AssetForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=300)])
    caption = TextAreaField("Caption", render_kw={"rows": 2})
    alt_text = TextAreaField("Alt text", validators=[Length(max=1000)], render_kw={"rows": 2})
    creator = StringField("Photographer / author", validators=[Length(max=200)])
    agency = StringField("Agency", validators=[Length(max=200)])
    copyright_holder = StringField("Copyright holder", validators=[Length(max=200)])
    licence = SelectField("Licence", choices=LICENCE_CHOICES, default=LicenceKind.OWN.value)
    licence_version = StringField(
        "Creative Commons licence and version", validators=[Length(max=60)]
    )
    licence_text = TextAreaField("Licence (other)", render_kw={"rows": 2})
    usage_notes = TextAreaField("Usage notes", render_kw={"rows": 2})
    rights_until = DateField("Rights end on", validators=[Optional()])
    max_download_width = IntegerField(
        "Largest width the licence allows (pixels)", validators=[Optional()]
    )
    has_consent = BooleanField("People shown have consented")
    tags = StringField("Tags (comma-separated)", validators=[Length(max=500)])
    media_page = SelectField(
        "Public media page", choices=[(s.value, s.label) for s in MediaPageSection], default=""
    )
    beat_ids = CheckboxListField("Beats", coerce=int)

    def to_input(self, zone: ZoneInfo) -> AssetInput:
        return AssetInput(
            title=self.title.data or "",
            caption=self.caption.data or "",
            alt_text=self.alt_text.data or "",
            creator=self.creator.data or "",
            agency=self.agency.data or "",
            copyright_holder=self.copyright_holder.data or "",
            licence=LicenceKind(self.licence.data or LicenceKind.OWN.value),
            licence_version=self.licence_version.data or "",
            licence_text=self.licence_text.data or "",
            usage_notes=self.usage_notes.data or "",
            max_download_width=self.max_download_width.data,
            rights_until=end_of_day_utc(self.rights_until.data, zone),
            has_consent=bool(self.has_consent.data),
            tags=self.tags.data or "",
            media_page=MediaPageSection(self.media_page.data or ""),
            beat_ids=list(self.beat_ids.data or []),
        )

    def fill_from(self, asset: MediaAsset, zone: ZoneInfo) -> None:
        for name in (
            "title", "caption", "alt_text", "creator", "agency", "copyright_holder",
            "licence_version", "licence_text", "usage_notes", "has_consent", "tags",
            "max_download_width",
        ):  # fmt: skip
            getattr(self, name).data = getattr(asset, name)
        self.licence.data = asset.licence.value
        self.media_page.data = asset.media_page.value
        self.rights_until.data = (
            asset.rights_until.astimezone(zone).date() if asset.rights_until else None
        )
        self.tags.data = ", ".join(asset.tag_list)
        self.beat_ids.data = [b.id for b in asset.beats]


class UploadForm(AssetForm):
    file = FileField(
        "File (JPEG, PNG or WebP image, or PDF)",
        render_kw={"accept": "image/jpeg,image/png,image/webp,application/pdf"},
    )


class UseInReleaseForm(FlaskForm):
    release_id = SelectField("Release", coerce=int, validators=[DataRequired()])
    as_lead = BooleanField("Make it the lead image")


class DeleteAssetForm(FlaskForm):
    """Deleting an asset; one used in releases needs ``confirmed=yes`` as well."""

    confirmed = BooleanField("Yes, delete it and remove it from those releases")


class ReleaseItemForm(FlaskForm):
    """Buttons on a release's gallery: remove, move, make lead (the action is the button)."""

    asset_id = IntegerField(validators=[DataRequired()])
