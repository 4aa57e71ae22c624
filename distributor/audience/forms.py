from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    EmailField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from distributor.audience.models import DeliveryMode, LawfulBasis, SuppressionReason


class CheckboxListField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class SubscribeForm(FlaskForm):
    email = EmailField("Your work email", validators=[DataRequired(), Length(max=320)])
    name = StringField("Your name", validators=[Optional(), Length(max=200)])
    beats = CheckboxListField("Beats", coerce=int)
    # Honeypot: hidden from people by CSS, filled in by form-spamming bots.
    website = StringField("Leave this field empty", validators=[Optional()])
    submit = SubmitField("Subscribe")


class EmbedSubscribeForm(SubscribeForm):
    # The embed lives in other sites' iframes, where our session cookie (SameSite=Lax) is not
    # sent, so a CSRF token cannot work there; double opt-in, the honeypot and per-IP limits
    # are what protect this form.
    class Meta:
        csrf = False


class ConfirmForm(FlaskForm):
    submit = SubmitField("Confirm my subscription")


class PreferencesForm(FlaskForm):
    beats = CheckboxListField("Beats I follow", coerce=int)
    delivery_mode = RadioField(
        "How to send them",
        choices=[
            SelectChoice(DeliveryMode.EACH_RELEASE.value, "Each release as it goes out"),
            SelectChoice(DeliveryMode.DAILY_DIGEST.value, "One daily digest"),
        ],
        default=DeliveryMode.EACH_RELEASE.value,
    )
    is_paused = BooleanField("Pause all mail for now")
    submit = SubmitField("Save my choices")


class EraseForm(FlaskForm):
    confirm = BooleanField(
        "I understand: my details and history are deleted and this address is never mailed again "
        "unless I subscribe anew.",
        validators=[DataRequired(message="Tick the box to confirm.")],
    )
    submit = SubmitField("Erase my data")


# -- staff ---------------------------------------------------------------------------------------

LAWFUL_BASIS_CHOICES = [
    SelectChoice(LawfulBasis.LEGITIMATE_INTEREST.value, "Legitimate interest"),
    SelectChoice(LawfulBasis.CONSENT.value, "Consent"),
]


class JournalistForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=320)])
    name = StringField("Name", validators=[Optional(), Length(max=200)])
    outlet = StringField("Outlet", validators=[Optional(), Length(max=200)])
    role = StringField("Role", validators=[Optional(), Length(max=120)])
    country = StringField("Country (2 letters)", validators=[Optional(), Length(max=2)])
    language = StringField("Language", validators=[Optional(), Length(max=12)])
    phone = StringField("Phone", validators=[Optional(), Length(max=60)])
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=5000)])
    lawful_basis = SelectField("Lawful basis", choices=LAWFUL_BASIS_CHOICES)
    submit = SubmitField("Save")


class BeatForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    slug = StringField("Slug", validators=[Optional(), Length(max=140)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=2000)])
    is_public = BooleanField("Public: journalists can pick it on the subscribe page", default=True)
    submit = SubmitField("Save beat")


class MediaListForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=2000)])
    submit = SubmitField("Save list")


class AddMembersForm(FlaskForm):
    emails = TextAreaField(
        "Addresses to add (one per line)", validators=[DataRequired(), Length(max=100_000)]
    )
    submit = SubmitField("Add to list")


class MergeForm(FlaskForm):
    duplicate = StringField(
        "Duplicate record (email address or id)", validators=[DataRequired(), Length(max=320)]
    )
    submit = SubmitField("Merge into this record")


class SuppressionForm(FlaskForm):
    email = EmailField("Address", validators=[DataRequired(), Length(max=320)])
    reason = SelectField(
        "Reason",
        choices=[
            SelectChoice(SuppressionReason.DO_NOT_CONTACT.value, "Do not contact"),
            SelectChoice(SuppressionReason.HARD_BOUNCE.value, "Hard bounce"),
            SelectChoice(SuppressionReason.COMPLAINT.value, "Complaint"),
            SelectChoice(SuppressionReason.UNSUBSCRIBED_ALL.value, "Unsubscribed from everything"),
        ],
    )
    note = StringField("Note", validators=[Optional(), Length(max=500)])
    submit = SubmitField("Suppress")


class LiftSuppressionForm(FlaskForm):
    justification = StringField("Why", validators=[Optional(), Length(max=1000)])
    submit = SubmitField("Lift")


class ActionForm(FlaskForm):
    """A bare POST button with a CSRF token."""

    submit = SubmitField("Go")


class UploadForm(FlaskForm):
    file = FileField("CSV file", validators=[FileRequired("Choose a CSV file.")])
    submit = SubmitField("Upload and map columns")


class MappingForm(FlaskForm):
    lawful_basis = RadioField(
        "Lawful basis for these journalists",
        choices=LAWFUL_BASIS_CHOICES,
        default=LawfulBasis.LEGITIMATE_INTEREST.value,
    )
    beats = CheckboxListField("Subscribe new journalists to these beats (optional)", coerce=int)
    media_list = SelectField("Add everyone to a media list (optional)", coerce=int)
    submit = SubmitField("Check the file (dry run)")
