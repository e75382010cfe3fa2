"""The OpenAPI rewrite: Lanyard's error shape instead of FastAPI's 422, examples where listed, and
no example left for an operation the app does not have."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from lanyard.runtime.openapi import Example, document, invalid


class Thing(BaseModel):
    name: str


def app_with(examples: dict[str, Example]) -> FastAPI:
    app = FastAPI()

    @app.post("/things")
    async def make(body: Thing) -> JSONResponse:
        return JSONResponse({"name": body.name}, status_code=201)

    @app.get("/things")
    async def every() -> dict[str, list[str]]:
        return {"things": []}

    document(app, examples)
    return app


def test_bad_input_is_documented_as_the_400_the_service_sends():
    doc = app_with({}).openapi()
    responses = doc["paths"]["/things"]["post"]["responses"]
    assert "422" not in responses
    assert responses["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert doc["components"]["schemas"]["Error"]["required"] == ["error", "error_description"]


def test_examples_and_refusals_land_on_their_operation():
    example = Example(
        request={"name": "x"},
        response={"name": "x"},
        status=201,
        refusals=(invalid("body.name: Field required"), (409, "exists", "taken"), (409, "locked", "locked")),
    )
    post = app_with({"POST /things": example}).openapi()["paths"]["/things"]["post"]
    assert post["requestBody"]["content"]["application/json"]["example"] == {"name": "x"}
    assert "200" not in post["responses"], "the route answers 201; FastAPI's guess of 200 is gone"
    assert post["responses"]["201"]["content"]["application/json"]["example"] == {"name": "x"}
    assert post["responses"]["400"]["content"]["application/json"]["example"]["error_description"] == (
        "body.name: Field required"
    )
    conflicts = post["responses"]["409"]["content"]["application/json"]["examples"]
    assert set(conflicts) == {"exists", "locked"}


def test_an_example_without_its_operation_is_an_error():
    app = app_with({"DELETE /things": Example(response={})})
    with pytest.raises(KeyError, match="DELETE /things"):
        app.openapi()
