from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, SubmitField
from wtforms.validators import DataRequired, Email, Length


class TestEmailForm(FlaskForm):
    to_address = EmailField(
        "Send to", validators=[DataRequired(), Email(check_deliverability=False), Length(max=320)]
    )
    submit = SubmitField("Send test email")
