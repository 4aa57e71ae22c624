from __future__ import annotations

from flask_wtf import FlaskForm


class NotificationChoicesForm(FlaskForm):
    """The ticks are read from the request by kind; the form carries the CSRF token."""
