"""Routes never shadow each other: no route's pattern matches another route's path, and OPTIONS
on every documented path lists exactly the methods docs/openapi.yaml gives it.

Paths are filled with ids the store really minted (a submitted job, a registered node), so the
id converters are checked against the ids the API hands out.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule

from tests.conftest import Api, register
from tests.unit.test_openapi import SPEC_DOC, flask_operations, spec_body, spec_operations, template

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
def ids(api: Api) -> dict[str, str]:
    job_id = api.post("/api/v1/jobs", json=spec_body(), expect=201).get_json()["job"]["id"]
    node_id, _ = register(api, "router")
    return {"job_id": job_id, "node_id": node_id, "ref": "router"}  # a node by its name


def concrete(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


def spec_paths() -> dict[str, set[str]]:
    return {path: {m.upper() for m in item if m in HTTP_METHODS} for path, item in SPEC_DOC["paths"].items()}


def test_minted_ids_are_what_the_id_converters_take(api: Api, ids: dict[str, str]) -> None:
    converters = api.client.application.url_map.converters
    assert re.fullmatch(converters["job"].regex, ids["job_id"])
    assert re.fullmatch(converters["node"].regex, ids["node_id"])
    for word in ("register", "drain", "heartbeat", "claim", "cancel", "retry", "logs", "start", "result"):
        assert not re.fullmatch(converters["job"].regex, word)
        assert not re.fullmatch(converters["node"].regex, word)
    assert re.fullmatch(converters["noderef"].regex, ids["node_id"])  # id, prefix or name
    for ref in ("router", ids["node_id"][:5], "register-2", "drained"):
        assert re.fullmatch(converters["noderef"].regex, ref), ref
    for word in ("register", "drain", "undrain", "heartbeat", "claim", "facts", "maintenance"):
        assert not re.fullmatch(converters["noderef"].regex, word), word


def test_the_url_map_serves_exactly_the_spec_operations(app: Any) -> None:
    assert flask_operations(app) == spec_operations()


def test_no_route_pattern_matches_another_routes_path(app: Any, ids: dict[str, str]) -> None:
    rules = [r for r in app.url_map.iter_rules() if r.endpoint != "static"]
    for path in spec_paths():
        url = concrete(path, ids)
        for rule in rules:
            if template(rule.rule) == path:
                continue
            alone = Map([Rule(rule.rule, endpoint="other")], converters=app.url_map.converters)
            with pytest.raises((NotFound, MethodNotAllowed)):
                alone.bind("localhost").match(url)
                pytest.fail(f"route {rule.rule} also matches {url}, the path of {path}")


@pytest.mark.parametrize(("path", "methods"), sorted(spec_paths().items()))
def test_options_lists_exactly_the_spec_methods(api: Api, ids: dict[str, str], path: str,
                                                methods: set[str]) -> None:
    reply = api.as_("").request("OPTIONS", concrete(path, ids), expect=200)
    allowed = {m.strip() for m in reply.headers["Allow"].split(",")}
    expected = methods | {"OPTIONS"} | ({"HEAD"} if "GET" in methods else set())
    assert allowed == expected, f"{path}: Allow {sorted(allowed)}, spec {sorted(expected)}"


def test_a_route_word_is_never_taken_for_an_id(api: Api) -> None:
    for method in ("GET", "DELETE"):
        reply = api.request(method, "/api/v1/nodes/register", expect=405)
        assert reply.get_json()["error"]["code"] == "method_not_allowed"
        assert {m.strip() for m in reply.headers["Allow"].split(",")} == {"OPTIONS", "POST"}
    assert api.get("/api/v1/nodes/drain", expect=404).get_json()["error"]["code"] == "not_found"
