"""Toxiproxy's HTTP API on the wire: status codes, exact messages, headers, populate rules."""

from __future__ import annotations

import pytest

from .helpers import connect


def err(response) -> tuple[int, dict]:
    return response.status_code, response.json()


BAD_BODIES = [
    (b"", "bad request body: EOF"),
    (b"{", "bad request body: unexpected EOF"),
    (b"nope", "bad request body: invalid character 'o' in literal null (expecting 'u')"),
    (b"x", "bad request body: invalid character 'x' looking for beginning of value"),
    (b'{"name" "x"}', "bad request body: invalid character '\"' after object key"),
    (b'{"name": NaN}', "bad request body: invalid character 'N' looking for beginning of value"),
    (b"[" * 10001, "bad request body: exceeded max depth"),
]


@pytest.mark.parametrize(("body", "message"), BAD_BODIES)
def test_bad_json_on_create(api, body, message, squall_only):
    """Malformed JSON is a 400 'bad request body: <Go decoder error>'."""
    assert err(api.post("/proxies", data=body)) == (400, {"error": message, "status": 400})


def test_create_errors(api, echo_server):
    """Missing fields, wrong types, duplicates: Toxiproxy's statuses and words."""
    up = echo_server.address
    assert err(api.post("/proxies", json={"upstream": up})) == (
        400,
        {"error": "missing required field: name", "status": 400},
    )
    assert err(api.post("/proxies", json={"name": "x"})) == (
        400,
        {"error": "missing required field: upstream", "status": 400},
    )
    code, body = err(api.post("/proxies", json={"name": 5, "upstream": up}))
    assert code == 400 and body["error"].startswith("bad request body: json: cannot unmarshal")
    api.proxy("x", up)
    assert err(api.post("/proxies", json={"name": "x", "upstream": up})) == (
        409,
        {"error": "proxy already exists", "status": 409},
    )


def test_error_response_shape(api):
    """Errors are JSON plus newline, sent like Go's http.Error, with a request id."""
    r = api.get("/proxies/nope")
    assert r.status_code == 404
    assert r.text == '{"error":"proxy not found","status":404}\n'
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Toxiproxy-Request-Id"]


def test_browsers_refused_and_unknown_routes(api):
    """Mozilla user agents get 403; unknown paths 404 text; wrong methods 405."""
    r = api.get("/proxies", headers={"User-Agent": "Mozilla/5.0"})
    assert (r.status_code, r.text) == (403, "User agent not allowed\n")
    assert (api.get("/nope").status_code, api.get("/nope").text) == (404, "404 page not found\n")
    assert api.put("/proxies").status_code == 405


def test_version(api):
    """GET /version is JSON with the Toxiproxy version."""
    r = api.get("/version")
    assert r.status_code == 200 and "version" in r.json()


def test_proxy_lifecycle_codes(api, echo_server):
    """201 create with the bound listen, 200 show/update, 204 delete, 404 after."""
    created = api.proxy("p", echo_server.address)
    assert created["enabled"] is True and created["toxics"] == []
    assert not created["listen"].endswith(":0")
    assert api.get("/proxies").json() == {"p": created}
    assert api.get("/proxies/p").json() == created
    assert api.post("/proxies/p", json={"enabled": False}).json()["enabled"] is False
    assert api.patch("/proxies/p", json={"enabled": True}).json()["enabled"] is True
    assert api.delete("/proxies/p").status_code == 204
    assert api.delete("/proxies/p").status_code == 404


def test_toxic_rules(api, echo_server):
    """Defaults, 400 stream/type, 409 duplicate name across streams, merge on update."""
    api.proxy("p", echo_server.address)
    t = api.toxic("p", "latency", attributes={"latency": 100, "jitter": 5, "unknown": 1})
    assert t == {
        "attributes": {"latency": 100, "jitter": 5},
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1,
    }
    assert err(api.post("/proxies/p/toxics", json={"type": "latency", "stream": "x"})) == (
        400,
        {"error": "stream was invalid, can be either upstream or downstream", "status": 400},
    )
    assert err(api.post("/proxies/p/toxics", json={"type": "nope"})) == (
        400,
        {"error": "invalid toxic type", "status": 400},
    )
    assert err(
        api.post(
            "/proxies/p/toxics",
            json={"type": "noop", "name": "latency_downstream", "stream": "upstream"},
        )
    ) == (409, {"error": "toxic already exists", "status": 409})
    code, body = err(
        api.post(
            "/proxies/p/toxics",
            json={"type": "latency", "name": "bad", "attributes": {"latency": "1"}},
        )
    )
    assert code == 400 and body["error"].startswith("bad request body: json: cannot unmarshal")
    updated = api.patch(
        "/proxies/p/toxics/latency_downstream",
        json={"attributes": {"latency": 7}, "toxicity": 0.5, "name": "ignored"},
    )
    assert updated.json()["attributes"] == {"latency": 7, "jitter": 5}
    assert updated.json()["toxicity"] == 0.5 and updated.json()["name"] == "latency_downstream"
    assert api.get("/proxies/p/toxics/nope").status_code == 404
    api.toxic("p", "noop", stream="upstream")
    names = [x["name"] for x in api.get("/proxies/p/toxics").json()]
    assert names == ["noop_upstream", "latency_downstream"]  # upstream chain first
    assert api.delete("/proxies/p/toxics/noop_upstream").status_code == 204
    assert api.delete("/proxies/p/toxics/noop_upstream").status_code == 404


def test_populate(api, echo_server):
    """201 {"proxies": [...]}; an identical proxy is kept with its toxics; errors name the index."""
    up = echo_server.address
    r = api.post("/populate", json=[{"name": "a", "listen": "127.0.0.1:0", "upstream": up}])
    assert r.status_code == 201
    listen = r.json()["proxies"][0]["listen"]
    api.toxic("a", "noop")
    again = api.post("/populate", json=[{"name": "a", "listen": listen, "upstream": up}]).json()
    assert again["proxies"][0]["toxics"][0]["name"] == "noop_downstream"
    bad = api.post("/populate", json=[{"name": "b", "upstream": up}, {"name": "c"}])
    assert bad.status_code == 400
    assert bad.json()["error"] == "missing required field: upstream at proxy 2"
    assert "b" not in api.get("/proxies").json()  # validated before anything is created


def test_reset(api, echo_server):
    """POST /reset: 204, every proxy enabled, every toxic removed."""
    listen = api.proxy("r", echo_server.address)["listen"]
    api.toxic("r", "latency", attributes={"latency": 1})
    api.patch("/proxies/r", json={"enabled": False})
    assert api.post("/reset").status_code == 204
    state = api.get("/proxies/r").json()
    assert state["enabled"] is True and state["toxics"] == []
    connect(listen).close()
