"""Schemathesis fuzzes every operation of /api/openapi.json through the WSGI app: no 500s."""

from __future__ import annotations

import os
from collections.abc import Callable

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.api.services import create_token
from distributor.reports.sample import seed_sent_release

# More than the 12 of old (issue 10); SCHEMATHESIS_EXAMPLES raises it for a longer run.
EXAMPLES_PER_OPERATION = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "40"))


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

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            response = case.call(headers=headers)
            case.validate_response(response, checks=[not_a_server_error])
            content_type = response.headers.get("content-type", [""])[0]
            assert content_type.startswith("application/json"), (case.path, response.status_code)

        fuzz()
