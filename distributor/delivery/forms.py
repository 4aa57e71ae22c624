from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField
from wtforms.validators import DataRequired

from distributor.releases.forms import LOCAL_FORMAT


class SendActionForm(FlaskForm):
    """Send now, pause, resume, cancel, retry failed: a CSRF-protected POST and nothing else."""


class ScheduleForm(FlaskForm):
    scheduled_for = DateTimeLocalField("Send at", format=LOCAL_FORMAT, validators=[DataRequired()])
