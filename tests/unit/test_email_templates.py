"""Every email template compiles to clean HTML; the output is compared to a snapshot."""

from __future__ import annotations

import re

import pytest

from distributor.mail.rendering import EmailRenderer, TemplateError, compile_mjml
from tests.support.email_contexts import CONTEXTS
from tests.support.snapshots import assert_matches_snapshot

renderer = EmailRenderer()


def test_every_template_has_a_sample_context() -> None:
    assert sorted(CONTEXTS) == renderer.names()


@pytest.mark.parametrize("name", renderer.names())
def test_template_matches_snapshot(name: str) -> None:
    rendered = renderer.render_email(name, CONTEXTS[name]())
    assert "<mj-" not in rendered.html and "</mj-" not in rendered.html
    assert len(rendered.html.encode()) < 90 * 1024, "Gmail clips HTML over ~102 KB"
    assert rendered.subject and "\n" not in rendered.subject
    current = f"Subject: {rendered.subject}\n\n{rendered.text}\n---HTML---\n{rendered.html}"
    assert_matches_snapshot(name, current)


# XML namespaces are names, not requests; everything else must be our own site.
_NAMESPACES = ("http://www.w3.org/", "urn:")
_OWN = "https://news.harbourlight.example/"
# Sample content links (a release body's own links) are the author's, not ours to load.
_SAMPLE_LINKS = ("https://council.example/",)
_URL = re.compile(r"""(?:https?:)?//[^\s"'<>()]+""")
_LOADS = re.compile(r"""<(?:img|link|script|iframe)\b[^>]*>|url\([^)]*\)|@import[^;]*""", re.I)


@pytest.mark.parametrize("name", renderer.names())
def test_mail_asks_no_third_party_for_anything(name: str) -> None:
    """No web fonts, no remote images but ours: a request tells that party the reader's IP."""
    html = renderer.render_email(name, CONTEXTS[name]()).html
    assert "fonts.googleapis" not in html and "fonts.gstatic" not in html
    for url in _URL.findall(html):
        assert url.startswith((_OWN, *_NAMESPACES, *_SAMPLE_LINKS)), url
    for tag in _LOADS.findall(html):
        for url in _URL.findall(tag):
            assert url.startswith((_OWN, "http://www.w3.org/")), tag


@pytest.mark.parametrize("name", renderer.names())
def test_mail_declares_its_language(name: str) -> None:
    html = renderer.render_email(name, CONTEXTS[name]()).html
    assert '<html lang="en"' in html


def test_a_font_mjml_would_fetch_from_google_is_never_linked() -> None:
    html = compile_mjml(
        '<mjml><mj-head><mj-attributes><mj-all font-family="Roboto, Arial" /></mj-attributes>'
        "</mj-head><mj-body><mj-section><mj-column><mj-text>Hi</mj-text></mj-column>"
        "</mj-section></mj-body></mjml>"
    )
    assert "googleapis" not in html and "Hi" in html


def test_malformed_mjml_is_an_error() -> None:
    with pytest.raises(TemplateError):
        compile_mjml("<mjml><mj-body><mj-section>")


def test_unknown_mjml_tag_is_caught() -> None:
    with pytest.raises(TemplateError, match="uncompiled"):
        compile_mjml(
            "<mjml><mj-body><mj-section><mj-column><mj-textt>x</mj-textt></mj-column></mj-section></mj-body></mjml>"
        )


def test_release_mail_carries_the_organisations_identity() -> None:
    rendered = renderer.render_email("release", CONTEXTS["release"]())
    assert "Notes to editors" in rendered.html and "About Harbour Light Foundation" in rendered.html
    assert "funds local reporting on &lt;coastal&gt; towns" in rendered.html
    assert "NOTES TO EDITORS" in rendered.text
    assert "/media/logos/0123456789abcdef01234567.png" in rendered.html
    assert "#0a6e5c" in rendered.html  # the brand colour
