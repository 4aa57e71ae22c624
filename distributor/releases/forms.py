from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, MultipleFileField
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    EmailField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Email, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from distributor.releases.services import ReleaseInput

LOCAL_FORMAT = "%Y-%m-%dT%H:%M"


def local_to_utc(value: dt.datetime | None, zone: ZoneInfo) -> dt.datetime | None:
    """A wall-clock time typed in the organisation's zone, as an aware UTC datetime."""
    if value is None:
        return None
    return value.replace(tzinfo=zone).astimezone(dt.UTC)


def utc_to_local(value: dt.datetime | None, zone: ZoneInfo) -> dt.datetime | None:
    """An aware UTC datetime as the naive wall-clock time a datetime-local input shows."""
    if value is None:
        return None
    return value.astimezone(zone).replace(tzinfo=None)


class CheckboxListField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class ReleaseForm(FlaskForm):
    kind_id = SelectField("Kind", coerce=int, validators=[DataRequired()])
    title = StringField("Title", validators=[DataRequired(), Length(max=300)])
    summary = TextAreaField(
        "Summary", validators=[Length(max=1000)], render_kw={"rows": 3, "maxlength": 1000}
    )
    body_markdown = TextAreaField("Body (Markdown)", render_kw={"rows": 18})
    beat_ids = CheckboxListField("Beats", coerce=int)
    media_list_ids = CheckboxListField("Media lists", coerce=int)
    contact_ids = CheckboxListField("Press contacts", coerce=int)
    campaign_tags = StringField("Campaign tags", validators=[Length(max=500)])
    photo = FileField("Photo file", render_kw={"accept": "image/jpeg,image/png,image/webp"})
    remove_photo = BooleanField("Remove the current photo")
    photo_alt = StringField("Photo alt text", validators=[Length(max=500)])
    photo_caption = TextAreaField("Photo caption", render_kw={"rows": 2})
    photo_credit = StringField("Photo credit", validators=[Length(max=300)])
    attachments = MultipleFileField(
        "Attachments (PDF or images)",
        render_kw={"accept": "application/pdf,image/jpeg,image/png,image/webp"},
    )
    embargo_until = DateTimeLocalField(
        "Embargoed until", format=LOCAL_FORMAT, validators=[Optional()]
    )

    def to_input(self, zone: ZoneInfo) -> ReleaseInput:
        return ReleaseInput(
            kind_id=self.kind_id.data or 0,
            title=self.title.data or "",
            summary=self.summary.data or "",
            body_markdown=self.body_markdown.data or "",
            beat_ids=list(self.beat_ids.data or []),
            media_list_ids=list(self.media_list_ids.data or []),
            contact_ids=list(self.contact_ids.data or []),
            campaign_tags=self.campaign_tags.data or "",
            photo_caption=self.photo_caption.data or "",
            photo_credit=self.photo_credit.data or "",
            photo_alt=self.photo_alt.data or "",
            embargo_until=local_to_utc(self.embargo_until.data, zone),
        )


class TransitionForm(FlaskForm):
    to = StringField(validators=[DataRequired()])
    comment = TextAreaField("Comment", validators=[Length(max=2000)], render_kw={"rows": 2})
    embargo_until = DateTimeLocalField(
        "Embargoed until", format=LOCAL_FORMAT, validators=[Optional()]
    )


class KindForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=80)])
    position = IntegerField("Position", default=0, validators=[Optional()])


class ContactForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    title = StringField("Job title", validators=[Length(max=200)])
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=320)])
    phone = StringField("Phone", validators=[Length(max=60)])


class MediaListsForm(FlaskForm):
    """The send page's media-list picker."""

    media_list_ids = CheckboxListField("Media lists", coerce=int)


class AttachmentForm(FlaskForm):
    attachments = MultipleFileField("Attachments (PDF or images)")
