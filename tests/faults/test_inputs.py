"""Proxy and toxic inputs Toxiproxy 2.12 refuses or answers in its own way (``api.go``, Go's net).

Each answer below is what Toxiproxy's Go code gives for the same request, except
where noted: a missing or empty ``listen`` binds 127.0.0.1 here (docs/faults.md).
"""

from __future__ import annotations

import contextlib
import json
import socket

import pytest

from .conftest import REAL_TOXIPROXY
from .helpers import Api, connect, recv_exactly

PROMPT = 10.0  # seconds: a refused client must see its connection end well within this


def strict_json(text: str) -> object:
    """Parse as a strict JSON parser would: NaN and Infinity are not JSON."""

    def refuse(name: str) -> object:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(
    "upstream",
    [
        "127.0.0.1",  # no port: Go's dial says "missing port in address"
        "127.0.0.1:nope",  # no such service name
        "127.0.0.1:99999",  # port out of range
        "[::1",  # unparsable
    ],
)
def test_upstream_that_cannot_be_dialed_closes_clients_promptly(toxiproxy, upstream):
    """Toxiproxy accepts any upstream string; a client of one that cannot be dialed is closed."""
    proxy = toxiproxy.create(upstream=upstream, name="nodial")
    # EOF (or a RST), not a connection left open forever.
    with connect(proxy.listen, timeout=PROMPT) as sock, contextlib.suppress(ConnectionResetError):
        assert sock.recv(1) == b""


def test_upstream_error_names_go_words(squall_only):
    """The refusal is recorded with Go's dial error."""
    from squall.faults import ProxyServer

    with ProxyServer.in_thread(port=0, seed=1) as srv:
        api = Api(srv.url)
        listen = api.proxy("noport", "127.0.0.1")["listen"]
        with connect(listen, timeout=PROMPT) as sock:
            assert sock.recv(1) == b""
        refused = [e for e in srv.events if e.action == "upstream.refused"]
        assert refused[0].detail["error"] == "dial tcp: address 127.0.0.1: missing port in address"


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ("127.0.0.1:99999", "listen tcp: address 99999: invalid port"),
        ("127.0.0.1:65536", "listen tcp: address 65536: invalid port"),
        ("127.0.0.1:-1", "listen tcp: address -1: invalid port"),
        ("127.0.0.1", "listen tcp: address 127.0.0.1: missing port in address"),
        ("127.0.0.1:nope", "listen tcp: lookup tcp/nope: unknown port"),
        ("::1:0", "listen tcp: address ::1:0: too many colons in address"),
        ("[::1:0", "listen tcp: address [::1:0: missing ']' in address"),
    ],
)
def test_unusable_listen_is_a_500_with_go_words(api, echo_server, listen, message):
    """Go's net.Listen refuses these (no port wraps modulo 65536); nothing is created."""
    r = api.post(
        "/proxies", json={"name": "bad", "listen": listen, "upstream": echo_server.address}
    )
    assert (r.status_code, r.json()) == (500, {"error": message, "status": 500})
    assert api.get("/proxies/bad").status_code == 404


def test_bind_error_names_the_resolved_address(api, echo_server):
    """'localhost:<busy port>' fails as 'listen tcp 127.0.0.1:<port>: bind: ...', like Go."""
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        r = api.post(
            "/proxies",
            json={"name": "busy", "listen": f"localhost:{port}", "upstream": echo_server.address},
        )
    assert r.status_code == 500
    assert r.json()["error"] == f"listen tcp 127.0.0.1:{port}: bind: address already in use"


@pytest.mark.parametrize("body", [{}, {"listen": ""}])
def test_missing_or_empty_listen_binds_a_free_port(api, echo_server, body):
    """Toxiproxy binds a free port (on every interface); squall binds one on 127.0.0.1."""
    r = api.post("/proxies", json={"name": "free", "upstream": echo_server.address, **body})
    assert r.status_code == 201, r.text
    host, port = r.json()["listen"].rsplit(":", 1)
    assert int(port) > 0
    if not REAL_TOXIPROXY:
        assert host == "127.0.0.1"
    with connect(f"127.0.0.1:{port}") as sock:
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"
    assert api.delete("/proxies/free").status_code == 204


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:8474", ("127.0.0.1", 8474)),
        ("[::1]:80", ("::1", 80)),
        (":0", ("", 0)),
        ("127.0.0.1:", ("127.0.0.1", 0)),  # Go: an empty port is 0
        ("127.0.0.1:+80", ("127.0.0.1", 80)),
        ("127.0.0.1:000000000000000080", ("127.0.0.1", 80)),
        ("127.0.0.1:http", ("127.0.0.1", 80)),  # a service name from /etc/services
        ("127.0.0.1:HTTP", ("127.0.0.1", 80)),
        ("127.0.0.1:99999999999999999999", "address 99999999999999999999: invalid port"),
        ("[::1]x:80", "address [::1]x:80: missing port in address"),
        ("a]:80", "address a]:80: unexpected ']' in address"),
        ("[a]:[80", "address [a]:[80: unexpected '[' in address"),
    ],
)
def test_addresses_split_like_go(address, expected):
    """SplitHostPort + LookupPort, word for word."""
    from squall.faults.addresses import AddressError, split_address

    if isinstance(expected, tuple):
        assert split_address(address) == expected
    else:
        with pytest.raises(AddressError) as info:
            split_address(address)
        assert str(info.value) == expected


NUMBER_CASES = [
    (
        '{"type": "latency", "toxicity": NaN}',
        "bad request body: invalid character 'N' looking for beginning of value",
    ),
    (
        '{"type": "latency", "toxicity": -Infinity}',
        "bad request body: invalid character 'I' in numeric literal",
    ),
    (
        '{"type": "latency", "attributes": {"latency": 9223372036854775808}}',
        "bad request body: json: cannot unmarshal number 9223372036854775808 into Go struct "
        "field LatencyToxic.attributes.latency of type int64",
    ),
    (
        '{"type": "latency", "toxicity": 1e39}',
        "bad request body: json: cannot unmarshal number 1e39 into Go struct field "
        "ToxicWrapper.toxicity of type float32",
    ),
    (
        '{"type": "latency", "attributes": {"latency": 1e400}}',
        "bad request body: json: cannot unmarshal number 1e400 into Go struct field "
        "LatencyToxic.attributes.latency of type int64",
    ),
]


@pytest.mark.parametrize(("body", "message"), NUMBER_CASES)
def test_nan_and_out_of_range_numbers_are_400(api, echo_server, body, message, squall_only):
    """NaN is not JSON and 2^63 is no int64: Go's decoder refuses both; the index stays JSON."""
    api.proxy("nums", echo_server.address)
    r = api.post("/proxies/nums/toxics", data=body)
    assert (r.status_code, r.json()) == (400, {"error": message, "status": 400})
    assert strict_json(api.get("/proxies").text) == {"nums": api.get("/proxies/nums").json()}


def test_updates_with_bad_numbers_change_nothing(api, echo_server):
    """A refused PATCH leaves the toxic as it was; the largest legal values stay valid JSON."""
    api.proxy("upd", echo_server.address)
    api.toxic("upd", "latency", attributes={"latency": 5})
    url = "/proxies/upd/toxics/latency_downstream"
    for body in ('{"toxicity": NaN}', '{"attributes": {"latency": 9223372036854775808}}'):
        assert api.patch(url, data=body).status_code == 400
    assert api.get(url).json()["attributes"]["latency"] == 5
    r = api.patch(url, json={"toxicity": 1e38, "attributes": {"latency": 2**63 - 1}})
    assert r.status_code == 200
    index = strict_json(api.get("/proxies").text)
    toxic = index["upd"]["toxics"][0]  # type: ignore[index]
    assert toxic["attributes"]["latency"] == 2**63 - 1 and toxic["toxicity"] == pytest.approx(1e38)


def test_null_toxic_body(api, echo_server):
    """'null' decodes to nothing: create is 400 'invalid toxic type', update a 200 no-op."""
    api.proxy("nul", echo_server.address)
    r = api.post("/proxies/nul/toxics", data="null")
    assert (r.status_code, r.json()) == (400, {"error": "invalid toxic type", "status": 400})
    before = api.toxic("nul", "latency", attributes={"latency": 7})
    r = api.patch("/proxies/nul/toxics/latency_downstream", data="null")
    assert (r.status_code, r.json()) == (200, before)


def test_proxy_objects_carry_the_go_logger_field(api, echo_server):
    """Go marshals Proxy's exported Logger pointer as {} in every proxy object."""
    created = api.proxy("log", echo_server.address)
    assert created["Logger"] == {}
    assert api.get("/proxies/log").json()["Logger"] == {}
    assert api.get("/proxies").json()["log"]["Logger"] == {}
    r = api.post("/populate", json=[{"name": "log2", "upstream": echo_server.address}])
    assert r.json()["proxies"][0]["Logger"] == {}


def test_middlewares_apply_only_to_matched_routes(api):
    """gorilla/mux: no request id and no browser check on 404s and 405s; both on a match."""
    browser = {"User-Agent": "Mozilla/5.0"}
    r = api.get("/nope", headers=browser)
    assert (r.status_code, r.text) == (404, "404 page not found\n")
    assert "X-Toxiproxy-Request-Id" not in r.headers
    r = api.put("/proxies", headers=browser)
    assert (r.status_code, r.content) == (405, b"")
    assert "X-Toxiproxy-Request-Id" not in r.headers
    r = api.get("/proxies", headers=browser)
    assert r.status_code == 403 and r.headers["X-Toxiproxy-Request-Id"]
    r = api.get("/proxies/nope")
    assert r.status_code == 404 and r.headers["X-Toxiproxy-Request-Id"]


def raw_request(api_url: str, target: str) -> bytes:
    """One request with the target exactly as given (HTTP clients would normalize it)."""
    host, port = api_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_paths_are_cleaned_and_decoded_like_gorilla_mux(api_url, squall_only):
    """Unclean paths redirect (301), bad escapes are 400, an escaped slash is no name."""
    head = raw_request(api_url, "//proxies").split(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 301") and b"\r\nLocation: /proxies\r\n" in head
    head = raw_request(api_url, "/proxies/a/../../version?x=1").split(b"\r\n\r\n")[0]
    assert b"\r\nLocation: /version?x=1\r\n" in head
    assert raw_request(api_url, "/proxies/%zz").startswith(b"HTTP/1.1 400")
    assert raw_request(api_url, "/proxies/a%2Fb").endswith(b"\r\n\r\n404 page not found\n")


def test_an_unexpected_failure_is_a_json_500_and_an_event(squall_only):
    """A bug inside a handler answers JSON (never a traceback) and is recorded as api.error."""
    from squall.faults import ProxyServer

    with ProxyServer.in_thread(port=0, seed=1) as srv:
        collection = srv.server.collection

        def broken(name: str) -> object:
            raise RuntimeError("boom")

        collection.get = broken  # type: ignore[method-assign]
        r = Api(srv.url).get("/proxies/anything")
        assert (r.status_code, r.json()) == (
            500,
            {"error": "internal error: RuntimeError", "status": 500},
        )
        errors = [e for e in srv.events if e.action == "api.error"]
        assert errors[0].detail["error"] == "RuntimeError('boom')"
        assert "Traceback" in errors[0].detail["traceback"]
