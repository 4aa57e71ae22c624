"""Refuse input no view can use, before any view sees it: NUL characters and deep JSON.

PostgreSQL text cannot hold NUL (psycopg raises on it), so a ``%00`` in a path, query or form
value used to surface as a 500. JSON nested thousands deep makes Python's parser raise
``RecursionError``. Both are now a 400 for every route (OWASP ASVS V5.1: input validation at
the trust boundary). Webhook and API bodies are checked as raw bytes, since their views read
the body themselves.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, abort, request

MAX_ID = 2**31 - 1  # PostgreSQL INTEGER: a larger id names nothing and overflows the driver
MAX_JSON_DEPTH = 64
MAX_JSON_BYTES = 2 * 1024 * 1024
_STRUCTURE = re.compile(rb'[\[\]{}"\\]')
_FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}


def json_depth(body: bytes, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of ``body`` as JSON text, counting only brackets outside strings.

    Stops counting at ``limit + 1``; malformed JSON is left to the real parser.
    """
    depth = deepest = 0
    in_string = False
    escaped_at = -1  # the offset of the character a backslash escapes
    for match in _STRUCTURE.finditer(body):
        char, at = match.group(), match.start()
        if in_string:
            if at == escaped_at:
                continue
            if char == b"\\":
                escaped_at = at + 1
            elif char == b'"':
                in_string = False
            continue
        if char == b'"':
            in_string = True
        elif char in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif char in (b"]", b"}"):
            depth -= 1
    return deepest


def _has_nul(*values: str) -> bool:
    return any("\x00" in value for value in values)


def _is_json_body() -> bool:
    return request.is_json or request.path.startswith(("/api/", "/webhooks/"))


def check_request() -> None:
    """The before-request hook: 400 for NUL anywhere, 400/413 for deep or huge JSON."""
    if _has_nul(request.path):
        abort(400, "The address contains a character we do not accept.")
    for key, value in request.args.items(multi=True):
        if _has_nul(key, value):
            abort(400, "The address contains a character we do not accept.")
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if _is_json_body():
        if (request.content_length or 0) > MAX_JSON_BYTES:
            abort(413)
        body = request.get_data(cache=True)
        if len(body) > MAX_JSON_BYTES:
            abort(413)
        if b"\x00" in body or b"\\u0000" in body.lower():
            abort(400, "The request contains a NUL character.")
        if json_depth(body) > MAX_JSON_DEPTH:
            abort(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels is refused.")
    elif request.mimetype in _FORM_TYPES:
        for key, value in request.form.items(multi=True):
            if _has_nul(key, value):
                abort(400, "The form contains a character we do not accept.")


def ids_in_range(_endpoint: str | None, values: dict[str, Any] | None) -> None:
    """An id in the path beyond what the database stores is a 404, like any unknown id."""
    for value in (values or {}).values():
        if isinstance(value, int) and not 0 <= value <= MAX_ID:
            abort(404)


def init_app(app: Flask) -> None:
    # Ahead of every other hook, so that nothing reads a value we are about to refuse.
    app.before_request_funcs.setdefault(None, []).insert(0, check_request)
    app.url_value_preprocessor(ids_in_range)
