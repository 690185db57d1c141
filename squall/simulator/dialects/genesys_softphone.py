"""Genesys softphone calls: the media server's side of jingle-message and ``genesys-webrtc``.

``place_call`` (the control plane) offers a call to one session, as Genesys's media service
(a jid at ``gjoll.<domain>``, which the SDK reads as *softphone*: v19 ``utils.js:86-91``) does:

1. ``<message><propose xmlns="urn:xmpp:jingle-message:0" id=S inin-cid=C
   inin-sdp-over-xmpp="true"/></message>``; the SDK emits ``requestIncomingRtcSession``;
2. the client's ``<proceed id=S/>`` (``acceptRtcSession``) starts a real aiortc peer that
   offers one ``sendrecv`` audio m-line carrying a tone (:class:`CallMedia`): an iq set
   ``<genesys-webrtc xmlns="genesys">{"method": "offer", "params": {sessionId,
   conversationId, sdp}}</genesys-webrtc>``, its candidates in the SDP or, with
   ``trickle``, as ``iceCandidate`` requests after it;
3. the client's ``answer``, ``iceCandidate``, ``info`` (``status: active`` once ICE
   connects), ``mute`` / ``unmute`` and ``terminate`` requests are each acknowledged with an
   iq result (the SDK's ``sendIQ`` waits 15 s for one) or refused with an iq error that says
   what was wrong;
4. ``end_call`` retracts a call not yet proceeded (``<retract id=S/>``, the SDK's
   ``cancelIncomingRtcSession``) or sends ``terminate``.

The v19 SDK never answers the server's ``genesys-webrtc`` iqs (``webrtc.js:303-314`` handles
them without a result, and stanza only auto-answers iqs nobody listens to: ``Client.js:217-238``),
so nothing here waits for one; an iq error to one is recorded on the call.

Media stays on 127.0.0.1: the offer has loopback host candidates only (``squall.media.ice``),
a remote candidate that is not loopback is not added (counted in ``ignored_candidates``), and
connectivity checks arriving from a non-loopback address get no answer, so no packet is sent
to one (libwebrtc gathers every interface).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import secrets
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from squall.media import ice
from squall.media.events import Events
from squall.media.observe import StateLog, stats_snapshot
from squall.media.probe import TrackProbe
from squall.media.tracks import ToneAudioTrack
from squall.protocol import genesys as x

from ..seam import Frame, Inbound
from .genesys import CallSignal

if TYPE_CHECKING:
    from ..core import Connection, Session
    from .genesys import GenesysDialect, GenesysWire

__all__ = ["Call", "CallMedia", "CallState", "Softphone"]

log = logging.getLogger(__name__)

#: real seconds aiortc may take to gather and negotiate (it runs on the wall clock)
MEDIA_TIMEOUT = 10.0
#: real seconds an answer waits for the client's first loopback candidate before it is applied
CANDIDATES_WAIT = 3.0
#: calls kept after they end, for ``calls()``; older ended ones are forgotten
KEEP_ENDED = 64


class CallState(StrEnum):
    PROPOSED = "proposed"  # propose sent, no answer yet
    PROCEEDING = "proceeding"  # the client proceeded: the offer is being made
    OFFERED = "offered"  # offer sent
    ANSWERED = "answered"  # the client's answer applied
    ACTIVE = "active"  # the client said info active (its ICE connected)
    ENDED = "ended"  # terminated, by either side
    RETRACTED = "retracted"  # the server withdrew it before the client proceeded
    REJECTED = "rejected"  # the client rejected it
    FAILED = "failed"  # the media side could not be set up


FINAL = frozenset({CallState.ENDED, CallState.RETRACTED, CallState.REJECTED, CallState.FAILED})


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname (an mDNS .local candidate): never resolved here


class CallMedia:
    """The server's real aiortc peer for one call: offers audio, sends a tone, probes what comes
    back. Holds the loopback-ICE scope from creation to :meth:`close`."""

    def __init__(self, tone_hz: float) -> None:
        ice.acquire()
        self._released = False
        self.pc = RTCPeerConnection(ice.rtc_configuration())
        self.states = StateLog.attach(self.pc)
        self.tone = ToneAudioTrack(tone_hz)
        self.transceiver = self.pc.addTransceiver(self.tone, direction="sendrecv")
        self.probe: TrackProbe | None = None
        self.track_seen = asyncio.Event()
        self.ignored_candidates = 0
        self.added_candidates = 0
        self.refused_checks = 0
        #: remote candidates held until the answer is applied (aioice fails a connect that starts
        #: with no remote candidate at all, and the SDK's answer has none: they trickle after it)
        self.early: list[str] = []
        self.candidates_in = asyncio.Event()  # a loopback candidate, or end-of-candidates
        self.answered = False
        self.ended = False  # the client's end-of-candidates came
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self.probe is None:
            self.probe = TrackProbe(track)
            self.track_seen.set()

    @property
    def mid(self) -> str:
        return self.transceiver.mid or "0"

    async def offer(self) -> str:
        """The offer, gathered (aiortc gathers before ``setLocalDescription`` returns)."""
        await asyncio.wait_for(
            self.pc.setLocalDescription(await self.pc.createOffer()), MEDIA_TIMEOUT
        )
        self._guard_checks()
        return self.pc.localDescription.sdp

    def _guard_checks(self) -> None:
        """Answer no connectivity check from a non-loopback address (instance-level, this call's
        ICE connection only): a STUN response goes back to the check's source."""
        ice_transport = self.transceiver.sender.transport.transport
        connection = ice_transport.iceGatherer._connection
        original = connection.request_received

        def request_received(message: Any, addr: tuple[str, int], protocol: Any) -> None:
            if not _loopback(addr[0]):
                self.refused_checks += 1
                return
            original(message, addr, protocol)

        # deliberate: aioice's Connection has no hook for inbound checks, so wrap its method
        connection.request_received = request_received  # type: ignore[method-assign]

    async def accept(self, sdp: str) -> None:
        """Apply the answer once a usable candidate of the client's is in (or end-of-candidates,
        or :data:`CANDIDATES_WAIT`), the ones held so far written into its first m-section."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.candidates_in.wait(), CANDIDATES_WAIT)
        lines = sdp.replace("\r\n", "\n").split("\n")
        while lines and not lines[-1]:
            lines.pop()
        starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
        at = starts[1] if len(starts) > 1 else len(lines)
        extra = [*self.early, *(["a=end-of-candidates"] if self.ended else [])]
        merged = "\r\n".join([*lines[:at], *extra, *lines[at:]]) + "\r\n"
        self.added_candidates += len(self.early)
        self.early.clear()
        self.answered = True
        await asyncio.wait_for(
            self.pc.setRemoteDescription(RTCSessionDescription(merged, "answer")), MEDIA_TIMEOUT
        )

    async def add_candidate(self, fragment: str) -> str:
        """One ``iceCandidate`` fragment (``m=<mid> 9 RTP/AVP 0\r\na=candidate:...``):
        ``added``, ``held`` (until the answer), ``ignored`` (not loopback, or not UDP) or
        ``end``."""
        lines = [line.strip() for line in fragment.replace("\r", "\n").split("\n") if line.strip()]
        if any(line == "a=end-of-candidates" for line in lines):
            self.ended = True
            self.candidates_in.set()
            if self.answered:
                await self.pc.addIceCandidate(None)
            return "end"
        found = next((line for line in lines if line.startswith("a=candidate:")), None)
        if found is None:
            raise ValueError("iceCandidate: params.sdp has no a=candidate: line")
        try:
            candidate = candidate_from_sdp(found[len("a=candidate:") :])
        except (ValueError, IndexError) as exc:
            raise ValueError(f"iceCandidate: not an ICE candidate ({exc})") from None
        if candidate.protocol.lower() != "udp" or not _loopback(candidate.ip):
            self.ignored_candidates += 1
            return "ignored"
        if not self.answered:
            self.early.append(found)
            self.candidates_in.set()
            return "held"
        candidate.sdpMid = self.mid
        await self.pc.addIceCandidate(candidate)
        self.added_candidates += 1
        return "added"

    def local_candidates(self) -> list[str]:
        """The offer's candidates as the fragments the SDK trickles (its own format)."""
        sdp = self.pc.localDescription.sdp if self.pc.localDescription else ""
        return [
            f"m={self.mid} 9 RTP/AVP 0\r\n{line.strip()}\r\n"
            for line in sdp.splitlines()
            if line.startswith("a=candidate:")
        ]

    def counts(self) -> dict[str, Any]:
        """What is known without awaiting: frames sent and probed, states, candidates."""
        probe = self.probe.report() if self.probe is not None else None
        return {
            "tone_frames_sent": self.tone.sent,
            "frames_received": probe.frames if probe else 0,
            "silent_frames_received": probe.silent if probe else 0,
            "ice_connection": self.states.ice_connection[-1],
            "connection": self.states.connection[-1],
            "states": self.states.as_dict(),
            "added_candidates": self.added_candidates,
            "ignored_candidates": self.ignored_candidates,
            "refused_checks": self.refused_checks,
        }

    async def report(self) -> dict[str, Any]:
        """:meth:`counts` and the RTP packets getStats() counts."""
        out = self.counts()
        stats = await stats_snapshot(self.pc) if not self._released else {}
        out["packets_sent"] = stats.get("outbound-rtp.audio.packetsSent", 0)
        out["packets_received"] = stats.get("inbound-rtp.audio.packetsReceived", 0)
        return out

    @property
    def closed(self) -> bool:
        return self._released

    async def close(self) -> None:
        if self._released:
            return
        try:
            if self.probe is not None:
                await self.probe.stop()
            self.tone.stop()
            await self.pc.close()
        finally:
            self._released = True
            ice.release()


@dataclass(eq=False)
class Call:
    """One call: who it is on, where it stands, what each side said."""

    id: str
    conversation_id: str
    session: str  # the core session id
    peer_jid: str  # the media service's jid (``...@gjoll.<domain>/...``)
    tone_hz: float
    trickle: bool
    auto_answer: bool
    state: CallState = CallState.PROPOSED
    muted: bool = False
    accepted: bool = False  # the client's <accept/> (rtcSessionAccepted)
    reason: str | None = None
    ended_by: str | None = None
    media: CallMedia | None = None
    events: Events = field(default_factory=Events)
    history: list[dict[str, Any]] = field(default_factory=list)
    last_report: dict[str, Any] | None = None

    def note(self, at: float, what: str, **detail: Any) -> None:
        self.history.append({"t": round(at, 6), "what": what, **detail})
        self.events.emit(what, detail)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "conversation_id": self.conversation_id,
            "session": self.session,
            "peer_jid": self.peer_jid,
            "state": self.state.value,
            "muted": self.muted,
            "accepted": self.accepted,
            "reason": self.reason,
            "ended_by": self.ended_by,
            "trickle": self.trickle,
            "history": list(self.history),
            "media": self.media_view(),
        }

    def media_view(self) -> dict[str, Any] | None:
        """Live counts while the media runs; the last full report once it has closed."""
        media = self.media
        if media is None or media.closed:
            return self.last_report
        return {**(self.last_report or {}), **media.counts()}


class Softphone:
    """Every call of one genesys dialect instance (one simulator)."""

    def __init__(self, dialect: GenesysDialect) -> None:
        self.dialect = dialect
        self.core = dialect.core
        self.calls: dict[str, Call] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._iq_ids = itertools.count(1)
        self._offer_iqs: dict[str, str] = {}  # our iq id -> call id

    # --- control plane -------------------------------------------------------------------------

    def place(
        self,
        session: Session,
        *,
        conversation_id: str | None = None,
        auto_answer: bool = False,
        trickle: bool = False,
        tone_hz: float = 440.0,
    ) -> dict[str, Any]:
        conn = session.connection
        if conn is None:
            raise LookupError(f"session {session.id} ({session.user}) has no open connection")
        call_id = str(uuid.uuid4())
        domain = self.dialect.options["domain"]
        call = Call(
            id=call_id,
            conversation_id=conversation_id or str(uuid.uuid4()),
            session=session.id,
            peer_jid=f"sip-{secrets.token_hex(4)}@gjoll.{domain}/media",
            tone_hz=tone_hz,
            trickle=trickle,
            auto_answer=auto_answer,
        )
        self._forget_old()
        self.calls[call_id] = call
        stanza = x.propose(
            call_id,
            conversation_id=call.conversation_id,
            frm=call.peer_jid,
            to=str(getattr(conn.wire, "full_jid", "")),
            auto_answer=auto_answer,
            persistent_id=call.conversation_id,
            user_id=session.user,
        )
        call.note(self.core.clock.now(), "proposed")
        self._send(call, Frame("message", stanza))
        return call.view()

    def end(self, call_id: str, reason: str = "success") -> dict[str, Any]:
        call = self.calls.get(call_id)
        if call is None:
            raise KeyError(call_id)
        if call.state in FINAL:
            return call.view()
        if call.state is CallState.PROPOSED:
            self._send(
                call,
                Frame("message", x.jingle_message("retract", call.id, frm=call.peer_jid, to=None)),
            )
            self._finish(call, CallState.RETRACTED, "server", reason)
        else:
            self._rpc(call, "terminate", {"sessionId": call.id, "reason": reason})
            self._finish(call, CallState.ENDED, "server", reason)
        return call.view()

    def views(self) -> list[dict[str, Any]]:
        return [c.view() for c in self.calls.values()]

    async def report(self, call_id: str) -> dict[str, Any]:
        """The call, with its media counted now (frames probed, packets from getStats)."""
        call = self.calls[call_id]
        if call.media is not None and call.state not in FINAL:
            call.last_report = await call.media.report()
        return call.view()

    async def aclose(self) -> None:
        """End every call's media and task: the simulator is stopping (or the test is done)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for call in self.calls.values():
            if call.media is not None:
                with contextlib.suppress(Exception):
                    if call.last_report is None or call.state not in FINAL:
                        call.last_report = await call.media.report()
                await call.media.close()

    # --- from the client -----------------------------------------------------------------------

    def on_message(self, wire: GenesysWire, el: x.Element) -> Inbound:
        """A ``<message>`` with a jingle-message child; anything else in it is ignored."""
        action = el.child(ns=x.NS_JINGLE_MESSAGE)
        if action is None:
            return Inbound("message", ())
        kind = f"jingle:{action.name}"
        session_id = action.get("id")
        if action.name not in x.JINGLE_MESSAGE_ACTIONS:
            return Inbound(
                kind,
                (),
                frames=(
                    self._message_error(
                        el,
                        "bad-request",
                        f"<{action.name}> is not a jingle-message action "
                        f"({', '.join(sorted(x.JINGLE_MESSAGE_ACTIONS))})",
                    ),
                ),
            )
        if action.name == "propose":
            text = "outgoing calls (a client's propose) are not served by this simulator"
            return Inbound(
                kind, (), frames=(self._message_error(el, "feature-not-implemented", text),)
            )
        call = self.calls.get(session_id or "")
        if call is None or call.session != wire.session_id():
            text = f"<{action.name}> for session {session_id!r}: no such call on this session"
            return Inbound(kind, (), frames=(self._message_error(el, "item-not-found", text),))
        if call.state in FINAL and action.name == "proceed":
            text = f"<proceed> for call {call.id}: it has {call.state.value} ({call.reason})"
            return Inbound(kind, (), frames=(self._message_error(el, "item-not-found", text),))
        now = self.core.clock.now()
        if action.name == "proceed":
            if call.state is CallState.PROPOSED:
                call.state = CallState.PROCEEDING
                call.note(now, "proceed")
                self._spawn(call, self._offer(call))
            else:
                call.note(now, "proceed_again", state=call.state.value)  # a repeated proceed
        elif action.name == "accept":
            call.accepted = True
            call.note(now, "accept")
        elif action.name == "reject":
            if call.state is CallState.PROPOSED:
                self._finish(call, CallState.REJECTED, "client", "rejected")
            else:
                call.note(now, "reject_again", state=call.state.value)  # the copy to its bare jid
        elif action.name == "retract" and call.state not in FINAL:
            self._finish(call, CallState.RETRACTED, "client", "retracted")
        return Inbound(kind, ())

    def on_rpc(self, wire: GenesysWire, el: x.Element, payload: x.Element) -> Inbound:
        """A client's ``genesys-webrtc`` iq: an iq result at once, or an iq error saying why."""
        try:
            method, params = x.parse_rpc(payload.text)
        except ValueError as exc:
            return Inbound(
                "genesys-webrtc", (), frames=(wire._iq_error(el, "bad-request", str(exc)),)
            )
        kind = f"rpc:{method}"
        call = self.calls.get(params["sessionId"])
        if call is None or call.session != wire.session_id():
            text = f"{method}: no call {params['sessionId']!r} on this session"
            return Inbound(kind, (), frames=(wire._iq_error(el, "item-not-found", text),))
        now = self.core.clock.now()
        problem: str | None = None
        if call.state in FINAL and method != "terminate":
            problem = f"{method}: call {call.id} has {call.state.value}"
        elif method == "answer" and call.state is not CallState.OFFERED:
            problem = (
                f"answer: call {call.id} is {call.state.value}, not offered "
                "(one answer, after the offer)"
            )
        elif method == "iceCandidate" and call.state not in (
            CallState.OFFERED,
            CallState.ANSWERED,
            CallState.ACTIVE,
        ):
            problem = f"iceCandidate: call {call.id} is {call.state.value}: no offer yet"
        if problem is not None:
            return Inbound(kind, (), frames=(wire._iq_error(el, "unexpected-request", problem),))
        ack = Frame(
            "iq",
            x.iq("result", el.get("id"), to=el.get("from") or wire.full_jid, frm=call.peer_jid),
        )
        media = call.media
        if method == "answer":
            call.state = CallState.ANSWERED
            call.note(now, "answer")
            if media is not None:
                self._spawn(call, self._apply_answer(call, media, params["sdp"]))
        elif method == "iceCandidate":
            if media is not None:
                self._spawn(call, self._apply_candidate(call, media, params["sdp"]))
        elif method == "info":
            status = params.get("status")
            call.note(now, "info", status=status)
            if status == "active" and call.state is CallState.ANSWERED:
                call.state = CallState.ACTIVE
                call.note(now, "active")
        elif method in ("mute", "unmute"):
            call.muted = method == "mute"
            call.note(now, method, type=params.get("type"))
        elif method == "terminate":
            if call.state not in FINAL:
                self._finish(call, CallState.ENDED, "client", params.get("reason") or "success")
            else:
                call.note(now, "terminate_again")
        return Inbound(kind, (), frames=(ack,))

    def on_iq_answer(self, iq_id: str | None, kind: str | None, el: x.Element) -> bool:
        """A result or error to one of our requests; True if it was one."""
        call_id = self._offer_iqs.pop(iq_id or "", None)
        if call_id is None:
            return False
        call = self.calls.get(call_id)
        if call is not None:
            error = el.child("error")
            cond = (
                next((c.name for c in error.children if c.ns == x.NS_STANZAS), None)
                if error
                else None
            )
            call.note(self.core.clock.now(), f"iq_{kind}", iq=iq_id, condition=cond)
        return True

    # --- the media side ------------------------------------------------------------------------

    async def _offer(self, call: Call) -> None:
        media = call.media = CallMedia(call.tone_hz)
        sdp = await media.offer()
        if call.state is not CallState.PROCEEDING:
            return  # ended while gathering
        if call.trickle:
            sdp = "".join(
                line + "\r\n"
                for line in sdp.splitlines()
                if not line.startswith(("a=candidate:", "a=end-of-candidates"))
            )
        params = {"sessionId": call.id, "conversationId": call.conversation_id, "sdp": sdp}
        self._rpc(call, "offer", params)
        call.state = CallState.OFFERED
        call.note(self.core.clock.now(), "offered", candidates=len(media.local_candidates()))
        if call.trickle:
            # no end-of-candidates: the SDK reads every fragment as "m=<mid> ...\r\na=..." and
            # throws a TypeError on a bare "a=end-of-candidates" (v19
            # types/genesys-cloud-media-session.js:193-197, called from webrtc.js:256)
            for fragment in media.local_candidates():
                self._rpc(call, "iceCandidate", {"sessionId": call.id, "sdp": fragment})

    async def _apply_answer(self, call: Call, media: CallMedia, sdp: str) -> None:
        try:
            await media.accept(sdp)
        except Exception as exc:  # aiortc's refusal of the client's SDP: the call fails
            call.note(self.core.clock.now(), "answer_refused", error=f"{type(exc).__name__}: {exc}")
            self._rpc(call, "terminate", {"sessionId": call.id, "reason": "error"})
            self._finish(call, CallState.FAILED, "server", f"answer not applied: {exc}")
            return
        call.note(self.core.clock.now(), "answer_applied")

    async def _apply_candidate(self, call: Call, media: CallMedia, fragment: str) -> None:
        try:
            outcome = await media.add_candidate(fragment)
        except ValueError as exc:
            call.note(self.core.clock.now(), "candidate_refused", error=str(exc))
            return
        call.note(self.core.clock.now(), f"candidate_{outcome}")

    # --- plumbing ------------------------------------------------------------------------------

    def _spawn(self, call: Call, work: Coroutine[Any, Any, None]) -> None:
        async def run() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the media side broke: the call fails, the server stays
                log.exception("softphone call %s", call.id)
                if call.state not in FINAL:
                    self._finish(call, CallState.FAILED, "server", f"{type(exc).__name__}: {exc}")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _finish(self, call: Call, state: CallState, by: str, reason: str) -> None:
        call.state = state
        call.ended_by = by
        call.reason = reason
        call.note(self.core.clock.now(), state.value, by=by, reason=reason)
        media = call.media
        if media is not None:
            self._spawn(call, self._close_media(call, media))

    async def _close_media(self, call: Call, media: CallMedia) -> None:
        with contextlib.suppress(Exception):
            call.last_report = await media.report()
        await media.close()

    def _connection(self, call: Call) -> Connection | None:
        session = self.core.sessions.get(call.session)
        return session.connection if session is not None else None

    def _send(self, call: Call, frame: Frame) -> None:
        """To the session's connection now (a call outlives a signalling reconnect)."""
        conn = self._connection(call)
        if conn is None or conn.closed:
            call.note(self.core.clock.now(), "undelivered", type=frame.type)
            return
        self.core.emit(conn, CallSignal(frame))

    def _rpc(self, call: Call, method: str, params: dict[str, Any]) -> None:
        conn = self._connection(call)
        to = getattr(conn.wire, "full_jid", None) if conn is not None else None
        iq_id = f"gw-{next(self._iq_ids)}"
        self._offer_iqs[iq_id] = call.id
        if len(self._offer_iqs) > 4096:  # the SDK answers none: keep the map bounded
            self._offer_iqs.pop(next(iter(self._offer_iqs)))
        self._send(
            call, Frame("iq", x.genesys_webrtc(iq_id, method, params, frm=call.peer_jid, to=to))
        )

    def _message_error(self, el: x.Element, condition: str, text: str) -> Frame:
        return Frame(
            "message",
            x.message_error(el.get("id"), condition, text, to=el.get("from"), frm=el.get("to")),
        )

    def _forget_old(self) -> None:
        ended = [c.id for c in self.calls.values() if c.state in FINAL]
        for call_id in ended[: max(0, len(ended) - KEEP_ENDED)]:
            del self.calls[call_id]
