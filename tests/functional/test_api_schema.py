"""Schemathesis fuzzes every operation of /api/openapi.json through the WSGI app.

The document is written from the same pydantic models that validate requests and build responses
(``distributor.api.contract``), so besides "no 500s" every response must conform to it: its
status is documented, its body matches the schema, valid input is accepted and invalid input
refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from distributor.accounts.models import Role, User
from distributor.api.contract import read_query
from distributor.api.services import create_token
from distributor.errors import ValidationFailed
from distributor.reports.sample import seed_sent_release

# More than the 12 of old (issue 10); SCHEMATHESIS_EXAMPLES raises it for a longer run.
EXAMPLES_PER_OPERATION = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "40"))


def _query_valid_as_sent(app: Flask, url: str) -> bool:
    """Whether the query string that actually went out is one the operation's own query model
    accepts. Schemathesis sometimes mutates a case in a way that has no form on the wire (an
    extra parameter whose value is an empty list is simply not sent): the request then is
    valid, and accepting it is right."""
    split = urlsplit(url)
    adapter = app.url_map.bind("localhost")
    endpoint, _ = adapter.match(split.path, method="GET")
    model = getattr(app.view_functions[endpoint], "api_contract").query
    if model is None:
        return not split.query
    with app.test_request_context(split.path, query_string=MultiDict(parse_qsl(split.query))):
        try:
            read_query(model)
        except ValidationFailed:
            return False
    return True


def _invalid_input_refused(app: Flask) -> Callable[..., object]:
    def check(ctx: Any, response: Any, case: Any) -> object:
        try:
            return negative_data_rejection(ctx, response, case)
        except AcceptedNegativeData:
            url = response.request.url
            if case.method == "GET" and _query_valid_as_sent(app, url):
                return None
            raise

    return check


# Two runs per operation (valid and invalid input): minutes on a loaded 2-core machine.
@pytest.mark.timeout(1500)
def test_no_input_makes_any_api_operation_fail(
    app: Flask, session: Session, make_user: Callable[..., User]
) -> None:
    seed_sent_release(session, recipients=4, prefix="fuzz")
    _, secret = create_token(session, make_user(Role.ADMIN), "fuzz")
    session.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14

    conformance = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    # Inputs whose validity JSON Schema cannot state: an address on a special-use domain
    # (RFC 6761, e.g. ``.test``) has the form of an email but is refused by the address rules.
    beyond_schema = {"createJournalist"}
    for operation, mode, checks in [
        (operation, mode, [*conformance, *extra])
        for operation in operations
        for mode, extra in (
            (
                GenerationMode.POSITIVE,
                []
                if operation.definition.raw.get("operationId") in beyond_schema
                else [positive_data_acceptance],
            ),
            (GenerationMode.NEGATIVE, [_invalid_input_refused(app)]),
        )
    ]:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case[Any]) -> None:
            response = case.call(headers=headers)
            case.validate_response(response, checks=checks)
            content_type = response.headers.get("content-type", [""])[0]
            assert content_type.startswith("application/json"), (case.path, response.status_code)

        fuzz()
