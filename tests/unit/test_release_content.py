"""Release content: sanitised Markdown, slugs, versions and their comparison, kinds, contacts."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.errors import Conflict, Forbidden, ValidationFailed
from distributor.releases import services
from distributor.releases.models import ReleaseStatus
from tests.support.releases import kind, make_release


def test_markdown_is_rendered_and_script_is_stripped() -> None:
    html = services.render_markdown(
        "# Big news\n\n**Bold** and [a link](https://example.org).\n\n"
        "<script>alert('x')</script>\n\n[click](javascript:alert(1))\n\n"
        '<img src=x onerror="alert(1)">'
    )
    assert "<strong>Bold</strong>" in html
    assert '<a href="https://example.org" rel="noopener noreferrer nofollow">a link</a>' in html
    assert "<h2>Big news</h2>" in html  # the page title is the only <h1>
    assert "<script" not in html and "alert('x')" not in html
    assert 'href="javascript' not in html
    assert not re.search(r"<[^>]*\son\w+=", html)  # no event-handler attributes
    assert "<img" not in html


def test_raw_html_is_cut_down_to_the_allowlist() -> None:
    html = services.render_markdown(
        '<p><a href="https://x.example" onclick="evil()">x</a> <sup>2</sup></p>\n\n'
        '<iframe src="https://evil.example"></iframe><style>body{}</style>'
        '<a href="javascript:alert(1)">y</a>'
    )
    assert "onclick" not in html
    assert "<sup>2</sup>" in html
    assert "<iframe" not in html and "<style" not in html and "body{}" not in html
    assert "javascript:" not in html


def test_slugs_are_unique(session: Session) -> None:
    first = make_release(session, title="Tide gauges go live")
    second = make_release(session, title="Tide gauges go live!")
    assert first.slug == "tide-gauges-go-live"
    assert second.slug == "tide-gauges-go-live-2"


def test_editing_keeps_earlier_versions_and_compares_them(
    session: Session, make_user: Callable[..., User]
) -> None:
    officer = make_user(Role.PRESS_OFFICER)
    release = make_release(session, title="Draft title", body="Line one.\n\nLine two.")
    data = services.ReleaseInput(
        kind_id=release.kind_id,
        title="Better title",
        summary=release.summary,
        body_markdown="Line one.\n\nLine two, revised.",
    )
    services.update_release(session, release, editor=officer, data=data)
    history = services.versions(session, release)
    assert [v.number for v in history] == [2, 1]
    assert history[1].title == "Draft title"
    diff = services.compare_versions(history[1], history[0])
    removed = [d.text for d in diff if d.kind == "removed"]
    added = [d.text for d in diff if d.kind == "added"]
    assert "# Draft title" in removed and "# Better title" in added
    assert "Line two." in removed and "Line two, revised." in added
    # Saving without content changes adds no version.
    services.update_release(session, release, editor=officer, data=data)
    assert len(services.versions(session, release)) == 2


def test_press_officers_edit_drafts_only(session: Session, make_user: Callable[..., User]) -> None:
    officer = make_user(Role.PRESS_OFFICER)
    editor = make_user(Role.EDITOR)
    release = make_release(session, status=ReleaseStatus.IN_REVIEW)
    data = services.ReleaseInput(kind_id=release.kind_id, title="Changed")
    with pytest.raises(Forbidden):
        services.update_release(session, release, editor=officer, data=data)
    services.update_release(session, release, editor=editor, data=data)
    assert release.title == "Changed"
    sending = make_release(session, status=ReleaseStatus.SENDING)
    with pytest.raises(Forbidden):
        services.update_release(session, sending, editor=editor, data=data)


def test_a_release_needs_a_title_and_a_kind(session: Session) -> None:
    with pytest.raises(ValidationFailed):
        services.create_release(
            session, author=None, data=services.ReleaseInput(kind_id=kind(session).id, title=" ")
        )
    with pytest.raises(ValidationFailed):
        services.create_release(
            session, author=None, data=services.ReleaseInput(kind_id=999_999, title="T")
        )


def test_preview_tokens_are_long_and_distinct(session: Session) -> None:
    a, b = make_release(session), make_release(session)
    assert a.preview_token != b.preview_token
    assert len(a.preview_token) >= 40


def test_kinds_are_editable_and_in_use_kinds_cannot_be_deleted(session: Session) -> None:
    kinds = services.ensure_default_kinds(session)
    assert [k.name for k in kinds] == ["Press release", "Update", "Report", "Statement"]
    op_ed = services.save_kind(session, name="Op-ed", position=9)
    assert op_ed.slug == "op-ed"
    with pytest.raises(Conflict):
        services.save_kind(session, name="op-ed")
    release = make_release(session, kind_name="Update")
    with pytest.raises(Conflict):
        services.delete_kind(session, release.kind)
    services.delete_kind(session, op_ed)
    assert "Op-ed" not in [k.name for k in services.list_kinds(session)]


def test_press_contacts_need_a_valid_address(session: Session) -> None:
    with pytest.raises(ValidationFailed):
        services.save_contact(session, name="Ann", email="not-an-address")
    contact = services.save_contact(session, name="Ann", email="ann@example.org", phone="+44 1")
    assert contact.id is not None
