"""Handshake and auth (docs/protocol.md §2) over real loopback sockets."""

from __future__ import annotations

from websockets.asyncio.client import connect

from squall.simulator import AuthPolicy, Simulator, make_guest_jwt

from .conftest import RawClient, wait_for_record


async def test_token_in_url_authenticates_at_once(sim: Simulator, open_client) -> None:
    """A ?token= credential is answered with `authenticated`, no auth frame needed."""
    client = await open_client("alice", authenticate=False)
    auth = await client.expect("authenticated", user="alice", guest=False)
    assert auth["sid"].startswith("c") and auth["session"].startswith("s")
    assert auth["recovery_token"] and auth["recovery_buffer_size"] == 100
    assert [s["user"] for s in sim.sessions()] == ["alice"]


async def test_token_in_authorization_header(sim: Simulator, open_client) -> None:
    """`Authorization: Bearer <token>` on the upgrade request authenticates."""
    client = await open_client(None, url=sim.url, Authorization="Bearer carol")
    await client.expect("authenticated", user="carol")


async def test_token_in_first_frame(sim: Simulator, open_client) -> None:
    """With no credential in the handshake, the first frame `auth` authenticates."""
    client = await open_client(None, url=sim.url)
    await client.send(type="auth", token="dave")
    await client.expect("authenticated", user="dave")


async def test_guest_jwt(sim: Simulator, open_client) -> None:
    """A guest JWT signed with the simulator's secret gives a guest session named by `sub`."""
    client = await open_client(None, url=sim.url + "?jwt=" + make_guest_jwt("visitor-7"))
    await client.expect("authenticated", user="visitor-7", guest=True)


async def test_expired_guest_jwt_is_refused(sim: Simulator, open_client) -> None:
    """An expired guest JWT is `auth_failed: expired_token`, then a 1008 close."""
    jwt = make_guest_jwt("visitor", ttl=-10)
    client = await open_client(None, url=sim.url + "?jwt=" + jwt)
    await client.expect("auth_failed", reason="expired_token")
    assert (await client.closed())[0] == 1008


async def test_forged_guest_jwt_is_refused(sim: Simulator, open_client) -> None:
    """A JWT signed with another secret is `invalid_jwt`."""
    jwt = make_guest_jwt("visitor", secret="not-the-servers-secret-but-long-enough-for-hs256")
    client = await open_client(None, url=sim.url)
    await client.send(type="auth", jwt=jwt)
    failed = await client.expect("auth_failed", reason="invalid_jwt")
    assert "Signature verification failed" in failed["message"]


async def test_unknown_token_with_a_token_table() -> None:
    """With a token table, an unknown token is `invalid_token` and the socket closes with 1008."""
    async with Simulator(auth=AuthPolicy(tokens={"t-alice": "alice"})) as sim:
        async with connect(sim.url + "?token=t-alice", proxy=None) as ws:
            await RawClient(ws).expect("authenticated", user="alice")
        async with connect(sim.url + "?token=nope", proxy=None) as ws:
            client = RawClient(ws)
            failed = await client.expect("auth_failed", reason="invalid_token")
            assert failed["message"] == "token is not known to this server"
            assert await client.closed() == (1008, "auth failed: invalid_token")


async def test_revoked_token_is_expired(sim: Simulator, open_client) -> None:
    """After revoke_token, the same token fails with `expired_token` on the next connect."""
    await open_client("erin")
    sim.revoke_token("erin")
    client = await open_client("erin", authenticate=False)
    await client.expect("auth_failed", reason="expired_token")


async def test_fail_next_auth_is_scripted_per_user(sim: Simulator, open_client) -> None:
    """fail_next_auth(user=...) fails exactly that user's next attempt, once."""
    sim.fail_next_auth(reason="forbidden", user="frank")
    other = await open_client("gina", authenticate=False)
    await other.expect("authenticated", user="gina")
    first = await open_client("frank", authenticate=False)
    await first.expect("auth_failed", reason="forbidden")
    second = await open_client("frank", authenticate=False)
    await second.expect("authenticated", user="frank")


async def test_missing_credentials(sim: Simulator, open_client) -> None:
    """An auth frame with neither token nor jwt is `missing_credentials`."""
    client = await open_client(None, url=sim.url)
    await client.send(type="auth")
    await client.expect("auth_failed", reason="missing_credentials")


async def test_no_auth_within_the_timeout_closes(sim: Simulator, open_client) -> None:
    """A socket that never authenticates is closed with 1008 after auth_timeout."""
    sim.configure()  # defaults: auth_timeout 10 protocol seconds = 100 ms here
    client = await open_client(None, url=sim.url)
    assert await client.closed() == (1008, "no auth within 10s")


async def test_tokens_never_reach_the_transcript() -> None:
    """Credentials in URLs and auth frames, and recovery tokens, are redacted in the transcript."""
    policy = AuthPolicy(tokens={"super-secret-token": "alice", "url-secret": "bob"})
    async with Simulator(auth=policy) as sim:
        async with connect(sim.url, proxy=None) as ws:
            client = RawClient(ws)
            await client.send(type="auth", token="super-secret-token")
            auth = await client.expect("authenticated", user="alice")
        async with connect(sim.url + "?token=url-secret&x=1", proxy=None) as ws:
            await RawClient(ws).expect("authenticated", user="bob")
        await wait_for_record(sim, lambda r: r.get("kind") == "close")
        dump = sim.core.transcript.to_jsonl()
    assert "super-secret-token" not in dump and "url-secret" not in dump
    assert auth["recovery_token"] not in dump
    assert '\\"token\\": \\"***\\"' in dump
    assert "token=***&x=1" in dump
