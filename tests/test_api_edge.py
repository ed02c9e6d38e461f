"""The HTTP edge: size limits, OPTIONS, CORS refusals, the API key's forms, bounded queries, OpenAPI."""

import json

import pytest
from fakes import FakeEngine
from fastapi.testclient import TestClient

from aleaart.api import create_app
from aleaart.config import Settings
from aleaart.params import FIELDS


@pytest.fixture
def client(tmp_path):
    app = create_app(Settings(images_dir=tmp_path / "images", api_key="k3y"), loader=FakeEngine)
    with TestClient(app) as c:
        yield c


def assert_error(response, status, code):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["code"] == code and body["error"]


def test_over_long_paths_and_headers_are_json_errors_without_echo(client):
    long_path = "/generated_images/" + "x" * 20_000
    response = client.get(long_path)
    assert_error(response, 414, "uri_too_long")
    assert len(response.content) < 500
    assert_error(client.get("/images", headers={"x-big": "y" * 40_000}), 431, "headers_too_large")
    assert_error(client.get("/generated_images/" + "x" * 5000), 404, "not_found")
    assert len(client.get("/generated_images/" + "x" * 5000).content) < 500


def test_plain_options_lists_the_allowed_methods(client):
    response = client.options("/jobs/abc")
    assert response.status_code == 204 and response.headers["allow"] == "DELETE, GET, HEAD, OPTIONS"
    assert client.options("/generate-image").headers["allow"] == "OPTIONS, POST"
    head, get = client.head("/jobs/abc"), client.get("/jobs/abc")  # HEAD is the GET without its body
    assert head.status_code == get.status_code and head.content == b"" and get.content
    assert head.headers["content-length"] == get.headers["content-length"]
    assert client.options("/web/app.js").headers["allow"] == "GET, HEAD, OPTIONS"
    assert_error(client.options("/nowhere"), 404, "not_found")


def test_a_refused_cors_preflight_is_a_json_error(client):
    refused = client.options("/generate-image", headers={"Origin": "http://evil.example",
                                                         "Access-Control-Request-Method": "POST"})
    assert_error(refused, 400, "cors_rejected")
    allowed = client.options("/generate-image", headers={"Origin": "http://localhost:3000",
                                                         "Access-Control-Request-Method": "POST"})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_the_api_key_is_x_api_key_or_a_bearer_token_and_401_says_how(client):
    denied = client.post("/jobs", json={"prompt": "p", "seed": 1})
    assert_error(denied, 401, "unauthorized")
    assert denied.headers["www-authenticate"] == 'Bearer realm="aleaart"'
    assert_error(client.post("/jobs", json={"prompt": "p", "seed": 1}, headers={"Authorization": "k3y"}),
                 401, "unauthorized")
    for headers in ({"X-API-Key": "k3y"}, {"Authorization": "Bearer k3y"}, {"Authorization": "bearer k3y"}):
        assert client.post("/jobs", json={"prompt": "p", "seed": 1}, headers=headers).status_code == 202


@pytest.mark.parametrize("query", [{"offset": "9223372036854775808"}, {"offset": "-1"}, {"limit": "101"},
                                   {"limit": "1e3"}, {"tokenId": "1\n"}, {"source": "x" * 65}])
def test_query_parameters_are_bounded(client, query):
    assert_error(client.get("/images", params=query), 422, "invalid_params")


def test_openapi_gives_parameters_their_fields_and_bounds_and_every_status(client):
    schema = client.get("/openapi.json").json()
    params = schema["components"]["schemas"]["SeedRequest"]["properties"]["parameters"]
    assert params["required"] == [f.key for f in FIELDS] and params["additionalProperties"] is False
    assert params["properties"]["steps"] == {"type": "integer", "minimum": 18, "maximum": 64, "title": "Steps"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if status.startswith(("4", "5")):
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorBody"), (path, method, status)
    # A nullable number's bounds are JSON Schema's minimum/maximum too, never pydantic's own names.
    strength = schema["components"]["schemas"]["UpscaleBody"]["properties"]["strength"]["anyOf"][0]
    assert strength == {"type": "number", "minimum": 0.1, "maximum": 0.75}
    assert '"ge":' not in json.dumps(schema) and '"le":' not in json.dumps(schema)
    for file_route in ("/generated_images/{filename}", "/tokens/{token_id}/image.png"):
        assert {"200", "206", "304", "416"} <= set(schema["paths"][file_route]["get"]["responses"])
    assert {"200", "201"} <= set(schema["paths"]["/models"]["post"]["responses"])
