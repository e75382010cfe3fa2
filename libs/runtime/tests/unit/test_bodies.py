"""The one bounded body parser every service uses: depth, size, repeated keys, UTF-8, JSON constants."""

import json
import re

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from lanyard.runtime.bodies import (
    BodyLimits,
    BodyRefused,
    BoundedRoute,
    json_depth,
    parse_form,
    parse_json,
    read_object,
    unbounded_routes,
    unique_fields,
)
from lanyard.runtime.errors import install_error_handlers


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ("{}", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('"[[[[[["', 0),  # brackets inside a string are not nesting
        (r'["\"[[[", ["x"]]', 2),  # an escaped quote does not end the string
        (r'["\\", [[]]]', 3),  # an escaped backslash does
        ("[]" * 1000, 1),
    ],
)
def test_depth_is_measured_outside_strings(text, depth):
    assert json_depth(text) == depth


def test_nesting_beyond_the_limit_is_refused_before_parsing():
    limits = BodyLimits(max_depth=4)
    assert parse_json('{"a":[[[1]]]}', limits) == {"a": [[[1]]]}
    with pytest.raises(BodyRefused, match="nested deeper than 4"):
        parse_json('{"a":[[[[1]]]]}', limits)
    with pytest.raises(BodyRefused, match="nested deeper"):
        parse_json("[" * 50_000 + "]" * 50_000, BodyLimits(max_bytes=10**6))  # RecursionError in json.loads


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='[]{}"\\:,1a ', max_size=3000))
def test_any_text_is_parsed_or_refused_never_an_exception(text):
    try:
        parse_json(text, BodyLimits(max_depth=8))
    except BodyRefused as refused:
        assert refused.status_code == 400


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=900, max_value=3000), st.sampled_from(["[", '{"k":', '["', '[{"a":"]",']))
def test_deep_prefixes_of_invalid_documents_are_refused_by_depth(depth, opener):
    with pytest.raises(BodyRefused):
        parse_json(opener * depth, BodyLimits(max_bytes=10**6))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"a": 1, "a": 2}', "repeats the key 'a'"),
        (b'{"x": {"k y": 1, "k y": 2}}', "repeats the key$"),  # not a plain name: not quoted back
        (b'{"a": NaN}', "NaN is not JSON"),
        (b"[Infinity]", "Infinity is not JSON"),
        (b'{"a": "\\ud800"}', "unpaired surrogate"),
        (b'["\\udfff", "ok"]', "unpaired surrogate"),
        (b"\xff", "not UTF-8"),
        (b'{"a": ', "malformed JSON"),
    ],
)
def test_refused_documents_name_the_rule(raw, message):
    with pytest.raises(BodyRefused) as refused:
        parse_json(raw)
    assert re.search(message, refused.value.description), refused.value.description
    assert refused.value.detail == {"error": "invalid_request", "error_description": refused.value.description}


def test_surrogate_pairs_and_ordinary_text_parse():
    assert parse_json(b'{"e": "\\ud83d\\ude00", "n": "N\xc3\xa9la"}') == {"e": "\U0001f600", "n": "N\u00e9la"}


def test_too_large_is_413():
    with pytest.raises(BodyRefused) as refused:
        parse_json(json.dumps({"a": "x" * 100}), BodyLimits(max_bytes=50))
    assert refused.value.status_code == 413


def test_forms_keep_repeats_for_the_caller_and_refuse_what_is_not_utf8():
    assert parse_form(b"a=1&b=&a=2") == [("a", "1"), ("b", ""), ("a", "2")]
    with pytest.raises(BodyRefused, match="repeated 'a'"):
        unique_fields(parse_form(b"a=1&a=2"))
    with pytest.raises(BodyRefused, match="not UTF-8"):
        parse_form(b"a=%ff")
    with pytest.raises(BodyRefused, match="more than 3 form fields"):
        parse_form(b"a=1&b=2&c=3&d=4", BodyLimits(max_fields=3))


class Item(BaseModel):
    name: str
    tags: dict[str, object] = {}


def app_with_routes() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    bounded = APIRouter(route_class=BoundedRoute)

    @bounded.post("/model")
    async def model(item: Item) -> dict:
        return {"name": item.name}

    @bounded.post("/object")
    async def obj(request: Request) -> dict:
        return await read_object(request)

    app.include_router(bounded)
    return app


async def test_fastapi_model_bodies_take_the_same_bounded_path():
    app = app_with_routes()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        deep = '{"name": "x", "tags": {"t": ' + "[" * 500 + "]" * 500 + "}}"
        for path in ("/model", "/object"):
            r = await http.post(path, content=deep, headers={"content-type": "application/json"})
            assert r.status_code == 400 and "nested deeper than 32" in r.json()["error_description"], path
            r = await http.post(
                path, content=b'{"name": "a", "name": "b"}', headers={"content-type": "application/json"}
            )
            assert r.status_code == 400 and r.json()["error"] == "invalid_request", path

        async def chunked():
            for _ in range(80):
                yield b" " * 1024

        r = await http.post("/model", content=chunked(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"] == "invalid_request"
        r = await http.post("/object", content=b"name=a", headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.json() == {"name": "a"}
        r = await http.post("/object", content=b"x", headers={"content-type": "text/plain"})
        assert r.status_code == 400 and "application/json" in r.json()["error_description"]
        assert (await http.post("/model", json={"name": "ok"})).json() == {"name": "ok"}
    assert unbounded_routes(app) == []

    @app.post("/forgotten")
    async def forgotten(item: Item) -> dict:
        return {}

    assert unbounded_routes(app) == ["['POST'] /forgotten"]
