"""Each API operation declares its contract once; requests are read and the document written from it.

``@operation(...)`` names the operation, its query model, its body model and its response model
(pydantic classes from ``distributor.api.schemas``). The wrapper validates the query string and
the JSON body against them before the view runs (422 with the reason otherwise), hands the view
typed objects, and refuses to send anything but an instance of the declared response model.
``document()`` walks the app's ``/api/`` routes and writes the OpenAPI 3.1 document from the same
declarations, so a bound, a type or a nullable field cannot be documented one way and enforced
another (the gap schemathesis found in the hand-written document this replaces). A route under
``/api/`` without a contract makes ``document()`` fail, and with it the schema test.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import current_app, jsonify, request
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from werkzeug.wrappers import Response

from distributor.api import schemas
from distributor.errors import ValidationFailed

JSON = "application/json"
F = TypeVar("F", bound=Callable[..., Any])

ERROR_STATUSES = {
    400: "Bad request",
    401: "No valid token",
    403: "The token's user may not do this",
    404: "Not found",
    409: "Conflict",
    422: "Invalid input",
}


@dataclass(frozen=True)
class Contract:
    op_id: str
    summary: str
    tag: str
    response: type[BaseModel]
    query: type[schemas.Query] | None = None
    body: type[schemas.Body] | None = None
    status: int = 200


def operation(
    op_id: str,
    summary: str,
    *,
    tag: str,
    response: type[BaseModel],
    query: type[schemas.Query] | None = None,
    body: type[schemas.Body] | None = None,
    status: int = 200,
) -> Callable[[Callable[..., BaseModel]], Callable[..., Response]]:
    """Declare an API view's contract. The view receives ``query=`` and ``body=`` when declared
    and returns an instance of ``response``."""
    contract = Contract(op_id, summary, tag, response, query, body, status)

    def decorate(view: Callable[..., BaseModel]) -> Callable[..., Response]:
        @functools.wraps(view)
        def wrapper(**kwargs: Any) -> Response:
            if contract.query is not None:
                kwargs["query"] = read_query(contract.query)
            if contract.body is not None:
                kwargs["body"] = read_body(contract.body)
            result = view(**kwargs)
            if type(result) is not contract.response:
                raise TypeError(
                    f"{view.__name__} returned {type(result).__name__}, "
                    f"not its declared {contract.response.__name__}"
                )
            response = jsonify(result.model_dump(mode="json"))
            response.status_code = contract.status
            return response

        wrapper.api_contract = contract  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _reason(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(parts)


M = TypeVar("M", bound=BaseModel)


def read_query(model: type[M]) -> M:
    # Read as written: ``?status=`` is an empty status (refused, as the document says), not
    # an absent one, so what is documented and what is enforced cannot differ.
    given = dict(request.args.items())
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        raise ValidationFailed(_reason(exc)) from None


def read_body(model: type[M]) -> M:
    if not isinstance(request.get_json(silent=True), dict):
        raise ValidationFailed("The request body must be a JSON object.")
    try:
        # JSON mode: strict types as JSON has them (enum members by value, no bool as int).
        return model.model_validate_json(request.get_data())
    except ValidationError as exc:
        raise ValidationFailed(_reason(exc)) from None


# -- the document --------------------------------------------------------------------------------

_PATH_ARG = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is null by being absent: document only its real type."""
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
        return {**rest, **options[0]}
    return {k: v for k, v in schema.items() if k != "default"}


def _query_parameters(component: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(component.get("required", []))
    parameters = []
    for name, prop in component.get("properties", {}).items():
        schema = _without_null({k: v for k, v in prop.items() if k not in ("title", "description")})
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": schema,
                "description": prop.get("description", ""),
            }
        )
    return parameters


def _path_parameters(rule: str) -> tuple[str, list[dict[str, Any]]]:
    parameters = []
    for match in _PATH_ARG.finditer(rule):
        integer = match["converter"] == "int"
        schema = {"type": "integer", "minimum": 0} if integer else {"type": "string"}
        parameters.append({"name": match["name"], "in": "path", "required": True, "schema": schema})
    return _PATH_ARG.sub(lambda m: "{" + m["name"] + "}", rule), parameters


def contracts() -> list[tuple[str, str, Contract]]:
    """Every (rule, method, contract) under ``/api/``; a route without one is an error."""
    found = []
    for rule in current_app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        view = current_app.view_functions[rule.endpoint]
        contract = getattr(view, "api_contract", None)
        if contract is None:
            if getattr(view, "api_contract_exempt", False):
                continue
            raise LookupError(f"{rule.rule} ({rule.endpoint}) declares no API contract")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((rule.rule, method, contract))
    return sorted(found)


def exempt(view: F) -> F:
    """A route under /api/ that is not an operation (the document itself)."""
    view.api_contract_exempt = True  # type: ignore[attr-defined]
    return view


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of every API operation, from the operations' contracts."""
    operations = contracts()
    models: dict[tuple[type[BaseModel], Any], None] = {(schemas.Error, "serialization"): None}
    for _rule, _method, contract in operations:
        models[(contract.response, "serialization")] = None
        if contract.query is not None:
            models[(contract.query, "validation")] = None
        if contract.body is not None:
            models[(contract.body, "validation")] = None
    refs, definitions = models_json_schema(
        list(models), ref_template="#/components/schemas/{model}"
    )
    components: dict[str, Any] = definitions.get("$defs", {})

    def ref(model: type[BaseModel], mode: str) -> dict[str, Any]:
        return dict(refs[(model, mode)])  # type: ignore[index]

    def component(model: type[BaseModel]) -> dict[str, Any]:
        found: dict[str, Any] = components[ref(model, "validation")["$ref"].rsplit("/", 1)[-1]]
        return found

    errors = {
        str(status): _json(ref(schemas.Error, "serialization"), text)
        for status, text in ERROR_STATUSES.items()
    }
    paths: dict[str, dict[str, Any]] = {}
    query_components = set()
    for rule, method, contract in operations:
        path, parameters = _path_parameters(rule)
        if contract.query is not None:
            parameters += _query_parameters(component(contract.query))
            query_components.add(ref(contract.query, "validation")["$ref"].rsplit("/", 1)[-1])
        op: dict[str, Any] = {
            "operationId": contract.op_id,
            "summary": contract.summary,
            "tags": [contract.tag],
            "parameters": parameters,
            "responses": {
                str(contract.status): _json(
                    ref(contract.response, "serialization"),
                    "Created" if contract.status == 201 else "OK",
                ),
                **errors,
            },
        }
        if contract.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {JSON: {"schema": ref(contract.body, "validation")}},
            }
        paths.setdefault(path, {})[method.lower()] = op
    for name in query_components:  # their fields are the parameters above
        components.pop(name, None)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "distributor API",
            "version": "1",
            "description": "Releases, journalists, subscriptions, sends and reports. "
            "Authenticate with a personal token from Staff > API tokens: "
            "`Authorization: Bearer <token>`. Lists are paginated with page and per_page.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": components,
        },
        "paths": paths,
    }
