"""Email templates: Jinja2 fills MJML, mjml-python compiles it to HTML.

One folder per email under ``templates/email/<name>/`` holding ``subject.txt``, ``body.mjml``
and ``body.txt``; the MJML extends ``templates/email/_layout/base.mjml``. Staff and subscriber
text is HTML-escaped by Jinja before it enters the MJML source.

mjml-python raises ``ValueError`` on malformed markup but passes unknown tags through silently,
so ``compile_mjml`` checks the output itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from mjml import mjml2html

from distributor.settings import PROJECT_ROOT

EMAIL_TEMPLATES_DIR = PROJECT_ROOT / "templates" / "email"
_LEFTOVER_MJML = re.compile(r"</?mj-[a-z-]+", re.IGNORECASE)
# MJML links web fonts by itself (its default fonts include Roboto, loaded from Google); no
# mail of ours may make a reader's client ask a third party for anything.
_WEB_FONT_LINK = re.compile(
    r"<link\b[^>]*fonts\.(?:googleapis|gstatic)\.com[^>]*>|@import\s+url\([^)]*fonts\.googleapis[^)]*\);?",
    re.IGNORECASE,
)


class TemplateError(RuntimeError):
    """An email template did not compile to clean HTML."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


def compile_mjml(source: str) -> str:
    """Compile MJML to HTML, failing on anything mjml-python would let slip through."""
    try:
        html: str = mjml2html(source)
    except ValueError as exc:
        raise TemplateError(f"MJML did not compile: {exc}") from exc
    leftover = _LEFTOVER_MJML.search(html)
    if leftover:
        raise TemplateError(f"MJML left an uncompiled tag in the HTML: {leftover.group(0)}")
    if "<body" not in html:
        raise TemplateError("MJML output has no <body>")
    return _WEB_FONT_LINK.sub("", html)


class EmailRenderer:
    def __init__(self, templates_dir: Path = EMAIL_TEMPLATES_DIR) -> None:
        self.templates_dir = templates_dir
        loader = jinja2.FileSystemLoader(str(templates_dir))
        self.markup_env = jinja2.Environment(
            loader=loader,
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.text_env = jinja2.Environment(
            loader=loader,
            autoescape=False,  # noqa: S701 - plain-text parts are never rendered as HTML
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def names(self) -> list[str]:
        return sorted(
            p.name
            for p in self.templates_dir.iterdir()
            if p.is_dir() and not p.name.startswith("_") and (p / "body.mjml").exists()
        )

    def render_mjml(self, name: str, context: dict[str, Any]) -> str:
        return self.markup_env.get_template(f"{name}/body.mjml").render(context)

    def render_subject(self, name: str, context: dict[str, Any]) -> str:
        subject = self.text_env.get_template(f"{name}/subject.txt").render(context)
        # Subjects are headers: no line breaks may survive from user input.
        return " ".join(subject.split())

    def render_text(self, name: str, context: dict[str, Any]) -> str:
        return self.text_env.get_template(f"{name}/body.txt").render(context)

    def render_email(self, name: str, context: dict[str, Any]) -> RenderedEmail:
        """Render subject, HTML and text for one email."""
        return RenderedEmail(
            subject=self.render_subject(name, context),
            html=compile_mjml(self.render_mjml(name, context)),
            text=self.render_text(name, context),
        )
