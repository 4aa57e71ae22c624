"""Every email template compiles to clean HTML; the output is compared to a snapshot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from distributor.mail.rendering import EmailRenderer, TemplateError, compile_mjml
from tests.support.email_contexts import CONTEXTS

SNAPSHOTS = Path(__file__).parent / "snapshots"
renderer = EmailRenderer()


def test_every_template_has_a_sample_context() -> None:
    assert sorted(CONTEXTS) == renderer.names()


@pytest.mark.parametrize("name", renderer.names())
def test_template_matches_snapshot(name: str) -> None:
    rendered = renderer.render(name, CONTEXTS[name]())
    assert "<mj-" not in rendered.html and "</mj-" not in rendered.html
    assert len(rendered.html.encode()) < 90 * 1024, "Gmail clips HTML over ~102 KB"
    assert rendered.subject and "\n" not in rendered.subject
    snapshot = SNAPSHOTS / f"{name}.txt"
    current = f"Subject: {rendered.subject}\n\n{rendered.text}\n---HTML---\n{rendered.html}"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not snapshot.exists():
        snapshot.parent.mkdir(exist_ok=True)
        snapshot.write_text(current)
    assert current == snapshot.read_text(), (
        f"{name} changed; rerun with UPDATE_SNAPSHOTS=1 if intended"
    )


def test_malformed_mjml_is_an_error() -> None:
    with pytest.raises(TemplateError):
        compile_mjml("<mjml><mj-body><mj-section>")


def test_unknown_mjml_tag_is_caught() -> None:
    with pytest.raises(TemplateError, match="uncompiled"):
        compile_mjml(
            "<mjml><mj-body><mj-section><mj-column><mj-textt>x</mj-textt></mj-column></mj-section></mj-body></mjml>"
        )
