"""The WebRTC step pack: peers, tracks and media assertions in scenarios (docs/scenarios.md).

Registered by :mod:`.packs` like any pack (``STEP_ARGS`` + ``HANDLERS``), and using
nothing but the :class:`~.context.RunContext` its handlers get:

- ``client.webrtc.*`` send the driver's ``webrtc.*`` commands (docs/driver.md), so
  they work for any client whose driver implements them;
- ``peer.*`` drive a :class:`squall.simulator.peer.FakePeer` that the simulator puts
  in a room (in the runner's process, attached to the scenario's simulator core);
- ``expect.media``, ``expect.peer_states``, ``expect.packets_rising`` read what a
  receiver counted (frames, order, loss, black), a peer connection's state
  histories and getStats deltas, from a client (through the driver) or a fake peer.

Participants are named as in the scenario (a client's name or a fake peer's name);
the pack turns a name into the permanent id the room knows it by, which survives a
signalling reconnect, and the driver accepts it wherever a peer sid is expected.

Media runs on the wall clock, not the scenario's: ``within`` and ``over`` of the
media steps are **real** seconds, whatever the timescale.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from aiortc.mediastreams import MediaStreamError
from pydantic import Field

from squall.clock import wait_for
from squall.media.events import MEMBER_EVENTS

from .base import Args, ClientArgs, DurationField, Name, Severity
from .contract import MEDIA_GRACE, StepFailed

if TYPE_CHECKING:
    from squall.simulator.peer import FakePeer

    from .context import RunContext
    from .verdicts import StepResult

__all__ = ["HANDLERS", "MEDIA_GRACE", "STEP_ARGS", "permanent_id", "states_match"]


# --- argument models -------------------------------------------------------------------------


class Enable(ClientArgs):
    """The client turns its WebRTC extension on (before it joins a room)."""

    permanent_id: str | None = Field(None, description="the permanent id to join rooms with")


class AddTrack(ClientArgs):
    """The client adds a synthetic track (indexed video or a tone) and defines it in the room."""

    _shorthand: ClassVar[str | None] = None
    kind: Literal["video", "audio"]
    id: str = Field(min_length=1)
    description: dict[str, Any] = Field(default_factory=dict)


class TrackRef(ClientArgs):
    """A client's own track by id (``client.webrtc.remove_track``)."""

    _shorthand: ClassVar[str | None] = None
    id: str = Field(min_length=1)


class PeerTrackRef(ClientArgs):
    """A peer's track: ``peer`` is a participant name (client or fake peer), not a sid."""

    _shorthand: ClassVar[str | None] = None
    peer: Name
    id: str = Field(min_length=1)


class WebRTCMessage(ClientArgs):
    """A message over the data channel (the server relays it only if no channel is open)."""

    _shorthand: ClassVar[str | None] = None
    message: Any = None
    to: Name | None = Field(None, description="participant name, or absent for every peer")


class FakePeerJoin(Args):
    """The simulator puts a fake aiortc peer in a room (its permanent id is its name)."""

    _declares: ClassVar[str | None] = "name"
    name: Name
    room: str = Field(min_length=1)
    video: bool = Field(True, description="offer an indexed video track with id 'video'")
    audio: bool = Field(True, description="offer a 440 Hz tone with id 'audio'")
    request: Literal["all", "none"] | list[str] = Field(
        "all", description="which track ids defined by others it requests"
    )
    echo: bool = Field(False, description="answer every data-channel message with {echo: it}")


class FakePeerRef(Args):
    _shorthand: ClassVar[str | None] = "name"
    name: Name


class ExpectMedia(Args, Severity):
    """``receiver`` has received ``sender``'s track: at least ``frames`` frames, in order."""

    receiver: Name
    sender: Name
    track: str = Field(min_length=1)
    frames: int = Field(30, ge=1, description="frames read at the receiver")
    since: Literal["start", "last"] = Field(
        "start",
        description="count from the track's first frame, or on top of what the previous "
        "expect.media of this receiver, sender and track saw",
    )
    in_order: float = Field(1.0, ge=0, le=1, description="share of +1 steps between frames")
    black: int = Field(0, ge=0, description="at most this many black frames")
    missing: int | None = Field(None, ge=0, description="at most this many frames skipped")
    frozen: int | None = Field(None, ge=0, description="at most this many repeated frames")
    within: DurationField = Field(10.0, description="real seconds (media runs on the wall clock)")


class ExpectPeerStates(Args, Severity):
    """The state history of ``client``'s peer connection with ``peer`` (one direction).

    A list holds when the history starts with its first state, ends with its last,
    and passes through all of them in this order (a renegotiation may revisit
    ``connecting``); ``exact: true`` wants the history to be exactly the list.
    """

    client: Name
    peer: Name
    direction: Literal["outbound", "inbound"] = "outbound"
    connection: list[str] | None = None
    ice_connection: list[str] | None = None
    signaling: list[str] | None = None
    exact: bool = False
    within: DurationField = Field(10.0, description="real seconds")


class ExpectPacketsRising(Args, Severity):
    """getStats delta over ``over``: packets of ``kind`` between ``client`` and ``peer`` rose."""

    client: Name
    peer: Name
    kind: Literal["audio", "video"] = "video"
    direction: Literal["outbound", "inbound"] = Field(
        "outbound", description="outbound: packetsSent to peer; inbound: packetsReceived from it"
    )
    over: DurationField = Field(1.0, description="measurement window, real seconds")
    at_least: int = Field(1, ge=1)


# --- helpers -----------------------------------------------------------------------------------


def _peers(ctx: RunContext) -> dict[str, FakePeer]:
    peers: dict[str, FakePeer] = ctx.ext.setdefault("webrtc.peers", {})  # only set here
    return peers


def _names(ctx: RunContext) -> str:
    return ", ".join([*ctx.clients, *_peers(ctx)]) or "none"


def permanent_id(ctx: RunContext, name: str) -> str:
    """The permanent id a participant has in its room (a fake peer's is its name)."""
    if name in _peers(ctx):
        return name
    if name not in ctx.clients:
        raise StepFailed(f"a client or fake peer named {name!r}", f"participants: {_names(ctx)}")
    session = ctx.session_of(name)
    sid = session.get("sid") if session else None
    for room in ctx.sim.rooms().values():
        for member in room["members"]:
            if member["sid"] == sid:
                return str(member["permanent_id"])
    return ctx.users[name]  # the server's default permanent id is the user


def _fake_peer(ctx: RunContext, name: str) -> FakePeer:
    peer = _peers(ctx).get(name)
    if peer is None:
        raise StepFailed(f"a fake peer named {name!r} (peer.join)", f"fake peers: {_names(ctx)}")
    return peer


def _remote(peer: FakePeer, pid: str) -> Any:
    for remote in peer.member.peers.values():
        if remote.permanent_id == pid:
            return remote
    return None


async def _client_command(
    ctx: RunContext, args: ClientArgs, cmd: str, payload: dict[str, Any], **kw: Any
) -> dict[str, Any] | None:
    return await ctx.command(
        args.client,
        cmd,
        ctx.render(payload),
        wait=kw.pop("wait", args.wait),
        store=args.as_,
        expect_error=args.expect_error,
        **kw,
    )


# --- client steps ------------------------------------------------------------------------------


async def enable(ctx: RunContext, a: Enable, step: StepResult) -> None:
    payload = {"permanent_id": a.permanent_id} if a.permanent_id else {}
    await _client_command(ctx, a, "webrtc.enable", payload)


async def add_track(ctx: RunContext, a: AddTrack, step: StepResult) -> None:
    payload = {"kind": a.kind, "id": a.id, "description": a.description}
    await _client_command(ctx, a, "webrtc.add_track", payload)


async def remove_track(ctx: RunContext, a: TrackRef, step: StepResult) -> None:
    await _client_command(ctx, a, "webrtc.remove_track", {"id": a.id})


async def request_peer_track(ctx: RunContext, a: PeerTrackRef, step: StepResult) -> None:
    payload = {"peer": permanent_id(ctx, a.peer), "id": a.id}
    await _client_command(ctx, a, "webrtc.request_peer_track", payload)


async def remove_peer_track(ctx: RunContext, a: PeerTrackRef, step: StepResult) -> None:
    payload = {"peer": permanent_id(ctx, a.peer), "id": a.id}
    await _client_command(ctx, a, "webrtc.remove_peer_track", payload)


async def send_message(ctx: RunContext, a: WebRTCMessage, step: StepResult) -> None:
    payload: dict[str, Any] = {"message": a.message}
    if a.to is not None:
        payload["to"] = permanent_id(ctx, a.to)
    await _client_command(ctx, a, "webrtc.send_message", payload)


async def status(ctx: RunContext, a: ClientArgs, step: StepResult) -> None:
    await _client_command(ctx, a, "webrtc.status", {})


# --- fake peers --------------------------------------------------------------------------------

PEER_EVENTS = ("joined", *MEMBER_EVENTS)


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool | type(None) | list | dict):
        return value
    return getattr(value, "kind", repr(value))  # a track: its kind


async def peer_join(ctx: RunContext, a: FakePeerJoin, step: StepResult) -> None:
    from squall.simulator.peer import FakePeer

    if a.name in ctx.clients or a.name in _peers(ctx):
        raise StepFailed(f"a new participant name, not {a.name!r}", f"taken: {_names(ctx)}")
    request = a.request if isinstance(a.request, str) else list(a.request)
    peer = FakePeer(ctx.sim, a.name, video=a.video, audio=a.audio, request=request, echo=a.echo)
    _peers(ctx)[a.name] = peer
    ctx.on_cleanup(peer.close)
    for event in PEER_EVENTS:

        def record(*args: Any, event: str = event) -> None:
            ctx.record(f"peer:{a.name}", "event", event=event, data=[_plain(x) for x in args])

        peer.events.on(event, record)
    await peer.connect()
    await peer.join_room(a.room)


async def peer_reconnect(ctx: RunContext, a: FakePeerRef, step: StepResult) -> None:
    peer = _fake_peer(ctx, a.name)
    old = peer.sid
    new = await peer.reconnect()
    ctx.record("runner", "peer_op", op="reconnect", peer=a.name, old_sid=old, sid=new)


async def peer_leave(ctx: RunContext, a: FakePeerRef, step: StepResult) -> None:
    await _fake_peer(ctx, a.name).leave_room()
    ctx.record("runner", "peer_op", op="leave", peer=a.name)


# --- expectations ------------------------------------------------------------------------------


def _media_verdict(a: ExpectMedia, report: dict[str, Any], target: int) -> list[str]:
    problems = []
    if report.get("frames", 0) < target:
        problems.append(f"{report.get('frames', 0)} frames, not {target}")
    if report.get("kind") == "video":
        if report.get("in_order_share", 0.0) < a.in_order:
            problems.append(f"in order {report.get('in_order_share'):.3f} < {a.in_order:g}")
        if report.get("black", 0) > a.black:
            problems.append(f"{report.get('black')} black frames > {a.black}")
        if a.missing is not None and report.get("missing", 0) > a.missing:
            problems.append(f"{report.get('missing')} missing frames > {a.missing}")
        if a.frozen is not None and report.get("frozen", 0) > a.frozen:
            problems.append(f"{report.get('frozen')} frozen frames > {a.frozen}")
    return problems


async def _fake_peer_report(
    peer: FakePeer, owner: str, track: str, target: int, timeout: float
) -> dict[str, Any] | None:
    """What ``peer`` read of ``owner``'s ``track`` once ``target`` frames are in or
    ``timeout`` (on its media clock) passes; ``None`` if the track was never identified."""
    from dataclasses import asdict

    key = (owner, track)

    async def read() -> None:
        if key not in peer.probes:
            await peer.events.wait_for(
                "peer_track_identified",
                lambda sid, tid, _t: tid == track and peer.member.peer(sid).permanent_id == owner,
                timeout=timeout,
            )
            await asyncio.sleep(0)  # the peer's own handler creates the probe
        probe = peer.probes.get(key)
        if probe is not None:
            await probe.frames_at_least(target, timeout=timeout)

    with contextlib.suppress(TimeoutError, MediaStreamError):  # the report says how far it got
        await wait_for(peer.member.clock, read(), timeout)
    probe = peer.probes.get(key)
    if probe is None:
        return None
    report = probe.report()
    return {**asdict(report), "in_order_share": report.in_order_share}


async def expect_media(ctx: RunContext, a: ExpectMedia, step: StepResult) -> None:
    owner = permanent_id(ctx, a.sender)
    key = (a.receiver, owner, a.track)
    seen: dict[Any, int] = ctx.ext.setdefault("webrtc.media_seen", {})
    target = a.frames + (seen.get(key, 0) if a.since == "last" else 0)
    what = f"{a.receiver} to read {target} frames of {a.sender}/{a.track}"
    if a.receiver in _peers(ctx):
        report = await _fake_peer_report(
            _fake_peer(ctx, a.receiver), owner, a.track, target, a.within
        )
    else:
        if a.receiver not in ctx.clients:
            raise StepFailed(f"a receiver named {a.receiver!r}", f"participants: {_names(ctx)}")
        reply = await ctx.command(
            a.receiver,
            "webrtc.media_report",
            {"peer": owner, "track": a.track, "frames": target, "timeout": a.within},
            wait=True,
            real_timeout=a.within + MEDIA_GRACE,
        )
        result = (reply or {}).get("result") or {}
        report = next(
            (
                t
                for t in result.get("tracks", [])
                if t.get("permanent_id") == owner and t.get("id") == a.track
            ),
            None,
        )
    if report is None:
        raise StepFailed(what, f"the track was never identified at {a.receiver}")
    ctx.record(
        "runner", "media", receiver=a.receiver, sender=a.sender, track=a.track, report=report
    )
    seen[key] = int(report.get("frames", 0))
    problems = _media_verdict(a, report, target)
    if problems:
        raise StepFailed(
            what + f", in order >= {a.in_order:g}, black <= {a.black}",
            "; ".join(problems) + f" (report: {_brief(report)})",
        )


def _brief(report: dict[str, Any]) -> str:
    keys = ("frames", "in_order_share", "missing", "frozen", "black", "silent", "ended")
    return ", ".join(f"{k}={report.get(k)}" for k in keys if k in report)


def states_match(history: list[str], want: list[str], exact: bool) -> bool:
    """``want`` against one state history (see :class:`ExpectPeerStates`)."""
    if exact:
        return history == want
    if not history or not want or history[0] != want[0] or history[-1] != want[-1]:
        return False
    it = iter(history)
    return all(state in it for state in want)


async def _histories(ctx: RunContext, a: ExpectPeerStates, pid: str) -> dict[str, Any] | None:
    if a.client in _peers(ctx):
        remote = _remote(_fake_peer(ctx, a.client), pid)
        if remote is None:
            return None
        log = remote.out_states if a.direction == "outbound" else remote.in_states
        return log.as_dict() if log is not None else None
    reply = await ctx.command(a.client, "webrtc.media_report", {}, wait=True)
    for peer in ((reply or {}).get("result") or {}).get("peers", []):
        if peer.get("permanent_id") == pid:
            history: dict[str, Any] | None = peer.get(a.direction)  # the driver reply's shape
            return history
    return None


async def expect_peer_states(ctx: RunContext, a: ExpectPeerStates, step: StepResult) -> None:
    pid = permanent_id(ctx, a.peer)
    wanted = {
        k: v
        for k, v in (
            ("connection", a.connection),
            ("ice_connection", a.ice_connection),
            ("signaling", a.signaling),
        )
        if v is not None
    }
    got: dict[str, Any] | None = None

    async def held() -> bool:
        nonlocal got
        got = await _histories(ctx, a, pid)
        return got is not None and all(
            states_match(got.get(k) or [], v, a.exact) for k, v in wanted.items()
        )

    # aiortc state changes emit no driver event: look again on the next record, or soon
    if not await ctx.until(held, real=a.within, poll=0.1):
        shown = {k: (got or {}).get(k) for k in wanted} if got else "no such connection"
        raise StepFailed(
            f"{a.client}'s {a.direction} connection with {a.peer}: {wanted}"
            + (" exactly" if a.exact else ""),
            str(shown),
        )


async def expect_packets_rising(ctx: RunContext, a: ExpectPacketsRising, step: StepResult) -> None:
    pid = permanent_id(ctx, a.peer)
    counter = (
        f"outbound-rtp.{a.kind}.packetsSent"
        if a.direction == "outbound"
        else f"inbound-rtp.{a.kind}.packetsReceived"
    )
    if a.client in _peers(ctx):
        from squall.media.observe import stats_delta, stats_snapshot

        peer = _fake_peer(ctx, a.client)
        remote = _remote(peer, pid)
        pc = (
            None
            if remote is None
            else (remote.outbound if a.direction == "outbound" else remote.inbound)
        )
        if pc is None:
            raise StepFailed(
                f"{a.client} has a {a.direction} connection with {a.peer}", "it has none"
            )
        before = await stats_snapshot(pc)
        await peer.member.clock.sleep(a.over)  # a measurement window, not a wait for an event
        delta = stats_delta(before, await stats_snapshot(pc))
    else:
        reply = await ctx.command(
            a.client,
            "webrtc.stats",
            {"peer": pid, "direction": a.direction, "over": a.over},
            wait=True,
            real_timeout=a.over + MEDIA_GRACE,
        )
        delta = ((reply or {}).get("result") or {}).get("delta") or {}
    ctx.record("runner", "stats", client=a.client, peer=a.peer, over=a.over, delta=delta)
    if delta.get(counter, 0) < a.at_least:
        raise StepFailed(
            f"{counter} of {a.client} with {a.peer} to rise by >= {a.at_least} over {a.over:g}s",
            f"it rose by {delta.get(counter, 0)} (delta: {delta})",
        )


# --- the pack ----------------------------------------------------------------------------------

STEP_ARGS: dict[str, type[Args]] = {
    "client.webrtc.enable": Enable,
    "client.webrtc.add_track": AddTrack,
    "client.webrtc.remove_track": TrackRef,
    "client.webrtc.request_peer_track": PeerTrackRef,
    "client.webrtc.remove_peer_track": PeerTrackRef,
    "client.webrtc.send_message": WebRTCMessage,
    "client.webrtc.status": ClientArgs,
    "peer.join": FakePeerJoin,
    "peer.reconnect": FakePeerRef,
    "peer.leave": FakePeerRef,
    "expect.media": ExpectMedia,
    "expect.peer_states": ExpectPeerStates,
    "expect.packets_rising": ExpectPacketsRising,
}
"""The WebRTC steps and the model of their arguments."""

HANDLERS: dict[str, Any] = {
    "client.webrtc.enable": enable,
    "client.webrtc.add_track": add_track,
    "client.webrtc.remove_track": remove_track,
    "client.webrtc.request_peer_track": request_peer_track,
    "client.webrtc.remove_peer_track": remove_peer_track,
    "client.webrtc.send_message": send_message,
    "client.webrtc.status": status,
    "peer.join": peer_join,
    "peer.reconnect": peer_reconnect,
    "peer.leave": peer_leave,
    "expect.media": expect_media,
    "expect.peer_states": expect_peer_states,
    "expect.packets_rising": expect_packets_rising,
}
"""How the runner carries out each step: ``await handler(ctx, args, step_result)``."""
