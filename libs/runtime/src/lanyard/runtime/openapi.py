"""Examples and the real error shape in each service's OpenAPI document.

FastAPI documents what it can see: the request models, a generic "Successful Response" for the
many routes that answer a JSONResponse, and a 422 `HTTPValidationError` for bad input. Lanyard
answers bad input with 400 `{"error": "invalid_request", ...}` (`lanyard.runtime.errors`), so the
generated document would send an integrator looking for a body that never comes. `document`
rewrites the generated document once: every operation's 422 becomes the 400 the service sends,
each listed operation gets its request and response examples and its documented refusals, and the
shared `Error` schema is what every refusal refers to. The examples are data beside the routes
(`<service>.api_examples`); an operation named there that the app does not have is an error when
the document is built (the drift test builds every service's), so a renamed route cannot leave a
stale example behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Error",
    "required": ["error", "error_description"],
    "properties": {
        "error": {"type": "string", "description": "a stable code (OAuth's where one exists)"},
        "error_description": {"type": "string", "description": "for people; never echoes the value sent"},
    },
    "description": "Every refusal; a few carry more members where documented (e.g. `failed_attempts`).",
}
ERROR_REF = {"$ref": "#/components/schemas/Error"}

Refusal = tuple[int, str, str]


def invalid(description: str) -> Refusal:
    """A 400 `invalid_request` as the shared validation handler words it (field, then rule)."""
    return (400, "invalid_request", description)


INVALID_TOKEN = (401, "invalid_token", "expired")
INSUFFICIENT_ROLE = (403, "insufficient_role", "needs one of ('superadmin', 'admin')")
UNAVAILABLE = (503, "temporarily_unavailable", "the broker did not acknowledge the event; retry")
ADMIN_REFUSALS = (INVALID_TOKEN, INSUFFICIENT_ROLE)
"""What every admin-API operation may answer before it looks at the request."""


@dataclass(frozen=True)
class Example:
    """One operation's examples: the request body (JSON), the main answer and its status, and the
    refusals worth showing (status, error code, a description as the service words it)."""

    response: Any = None
    status: int = 200
    request: Any = None
    refusals: tuple[Refusal, ...] = ()
    media_type: str = "application/json"


def _json(example: Any, description: str, schema: Any = None) -> dict[str, Any]:
    content: dict[str, Any] = {"example": example}
    if schema is not None:
        content["schema"] = schema
    return {"description": description, "content": {"application/json": content}}


def rewrite(doc: dict[str, Any], examples: Mapping[str, Example]) -> dict[str, Any]:
    """The generated document with Lanyard's error shape and the examples (keys "METHOD /path",
    as the document spells the path). Raises KeyError naming an example with no operation."""
    paths = doc.get("paths", {})
    for item in paths.values():
        for operation in item.values():
            responses = operation.get("responses", {})
            if "422" in responses and "HTTPValidationError" in str(responses["422"]):
                del responses["422"]
                responses["400"] = _json(
                    {"error": "invalid_request", "error_description": "body.name: Field required"},
                    "Bad input (the field and the rule, never the value sent)",
                    ERROR_REF,
                )
    for key, example in examples.items():
        method, _, path = key.partition(" ")
        operation = paths.get(path, {}).get(method.lower())
        if operation is None:
            raise KeyError(f"OpenAPI example for {key!r}: the app has no such operation")
        responses = operation.setdefault("responses", {})
        if example.response is not None:
            generic = responses.get("200", {}).get("description") == "Successful Response"
            if example.status != 200 and generic:
                del responses["200"]  # the route answers its own status; FastAPI guessed 200
            answer = responses.setdefault(str(example.status), {"description": "OK"})
            if answer.get("description") == "Successful Response":
                answer["description"] = "OK"
            content = answer.setdefault("content", {}).setdefault(example.media_type, {})
            content.setdefault("schema", {})
            content["example"] = example.response
        if example.request is not None:
            body = operation.setdefault("requestBody", {"content": {"application/json": {"schema": {}}}})
            body.setdefault("content", {}).setdefault("application/json", {})["example"] = example.request
        by_status: dict[int, list[tuple[str, str]]] = {}
        for status, code, description in example.refusals:
            by_status.setdefault(status, []).append((code, description))
        for status, refusals in by_status.items():
            bodies = {code: {"error": code, "error_description": description} for code, description in refusals}
            answer = _json(next(iter(bodies.values())), " or ".join(bodies), ERROR_REF)
            if len(bodies) > 1:  # one example per code, named by it
                content = answer["content"]["application/json"]
                del content["example"]
                content["examples"] = {code: {"value": body} for code, body in bodies.items()}
            responses[str(status)] = answer
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    text = str(paths)
    for unused in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{unused}'" not in text:
            schemas.pop(unused, None)
    return doc


def document(app: FastAPI, examples: Mapping[str, Example]) -> None:
    """Serve the rewritten document at the app's openapi_url (built once, on first request)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = rewrite(generate(), examples)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
