from __future__ import annotations

from zoneinfo import available_timezones

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, EmailField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Email, Length, Optional, Regexp, ValidationError


def _zones() -> list[tuple[str, str]]:
    return [(z, z.replace("_", " ")) for z in sorted(available_timezones()) if "/" in z]


def _https_or_empty(_form: FlaskForm, field: StringField) -> None:
    if field.data and not field.data.startswith(("https://", "http://")):
        raise ValidationError("Start it with https://")


class OrganisationForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    tagline = StringField("Tagline", validators=[Optional(), Length(max=300)])
    website_url = StringField("Website", validators=[Optional(), Length(max=500), _https_or_empty])
    press_email = EmailField(
        "Press email",
        validators=[DataRequired(), Email(check_deliverability=False), Length(max=320)],
    )
    postal_address = TextAreaField(
        "Postal address", validators=[DataRequired(), Length(max=500)], render_kw={"rows": 2}
    )
    timezone = SelectField("Time zone", choices=[])
    brand_colour = StringField(
        "Brand colour",
        validators=[DataRequired(), Regexp(r"^#[0-9a-fA-F]{6}$", message="Like #0b5cad")],
        render_kw={"type": "color"},
    )
    boilerplate = TextAreaField(
        "About the organisation (notes to editors)",
        validators=[Optional(), Length(max=3000)],
        render_kw={"rows": 5},
    )
    social_links = TextAreaField(
        "Social links, one per line",
        validators=[Optional(), Length(max=2000)],
        render_kw={"rows": 3, "placeholder": "https://social.example/@harbourlight"},
    )
    logo = FileField("Logo (PNG with transparency works best)")
    remove_logo = BooleanField("Remove the current logo")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.timezone.choices = _zones()


class SpokespersonForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    title = StringField("Role", validators=[Optional(), Length(max=200)])
    email = EmailField(
        "Email", validators=[Optional(), Email(check_deliverability=False), Length(max=320)]
    )
    phone = StringField("Phone", validators=[Optional(), Length(max=64)])
    photo = FileField("Photo (at least 300 pixels wide)")


class RemoveForm(FlaskForm):
    """A CSRF-protected POST and nothing else."""
