"""The driver protocol: any client under test, driven by JSON lines over stdio.

``python -m squall.client.driver [--timescale 0.01] [--no-resubscribe] ...`` runs the
reference client behind the same interface any other client implements, so the
conformance suite has one path for all of them (docs/driver.md).

In (stdin), one command per line::

    {"id": 1, "cmd": "connect", "args": {"url": "ws://127.0.0.1:8765/", "token": "alice"}}

Out (stdout), one object per line: every client event, and one reply per command::

    {"event": "connected", "data": {"session": "s1", "sid": "c1", ...}, "t": 12.5}
    {"reply": 1, "ok": true, "result": {"status": "connected", ...}}
    {"reply": 2, "ok": false, "error": "server error method_not_found: ...", "type": "RemoteError"}

Commands run concurrently (a ``call`` waiting for its answer does not block a
``disconnect``); replies carry the command's ``id``. ``t`` is protocol seconds
since the driver started. The ``--no-resubscribe``, ``--retry-auth-failure`` and
``--no-recover`` flags break the client on purpose, so the suite can prove its
scenarios catch broken clients.

Every line out, and every log record on stderr, is scrubbed (squall.secrets): the
driver knows the token, JWT and recovery token it was configured with and the
recovery token the server issued, and masks them wherever they appear (a ``sent``
auth frame, a ``packet``, a URL). A token that the server reports as the user's
name is that name, not a secret.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from squall.clock import LoopClock
from squall.secrets import Secrets

from .errors import ClientError, NotConnected
from .policy import Policy
from .streaming import DrainRequest, StreamingClient
from .wire import client_wire, wire_parameters

WEBRTC_COMMANDS = (
    "webrtc.enable",
    "webrtc.add_track",
    "webrtc.remove_track",
    "webrtc.request_peer_track",
    "webrtc.remove_peer_track",
    "webrtc.send_message",
    "webrtc.status",
    "webrtc.media_report",
    "webrtc.stats",
)
"""The WebRTC extension's commands (squall.client.webrtc.driver); aiortc loads on enable."""

COMMANDS = (
    "configure",
    "connect",
    "disconnect",
    "reconnect",
    "subscribe",
    "unsubscribe",
    "call",
    "answer_drain",
    "join_room",
    "leave_room",
    "send_message",
    "send_signal",
    "define_track",
    "remove_track",
    "request_track",
    "status",
    "quit",
    *WEBRTC_COMMANDS,
)

DRAIN_ANSWERS = ("pending", "done", "none")


class CommandError(Exception):
    """A command the driver cannot run: unknown, or with wrong arguments."""


class Driver:
    """One client behind the driver protocol. ``write`` receives each output line (a dict)."""

    def __init__(
        self,
        write: Callable[[dict[str, Any]], None],
        *,
        timescale: float = 1.0,
        overrides: dict[str, Any] | None = None,
        seed: int | None = None,
        dialect: str = "reference",
        secrets: Secrets | None = None,
    ) -> None:
        self._sink = write
        self.secrets = secrets if secrets is not None else Secrets()
        self.dialect = dialect
        client_wire(dialect)  # an unknown dialect fails here, before driver_ready
        self.clock = LoopClock(timescale)
        self.overrides = overrides or {}
        self.rng = random.Random(seed)
        self.config: dict[str, Any] = {}
        self.client: StreamingClient | None = None
        self.drain_answer = "none"
        self.drain: DrainRequest | None = None
        self.done = asyncio.Event()
        self.t0 = self.clock.now()
        self.webrtc: Any = None  # a squall.client.webrtc.driver.WebRTCDriver once enabled

    # --- plumbing -------------------------------------------------------------------------------

    def write(self, obj: dict[str, Any]) -> None:
        """One output line, scrubbed: the only way out."""
        client = self.client
        if client is not None:
            self.secrets.add(client.recovery_token)
            user = getattr(getattr(client, "core", None), "user", None)
            if isinstance(user, str):
                self.secrets.public(user)  # a token that is the user's name is no secret
        self._sink(self.secrets.scrub(obj))

    def _on_event(self, event: str, data: Any) -> None:
        if isinstance(data, DrainRequest):
            self.drain = data
            payload = data.data
        else:
            payload = data
        self.write({"event": event, "data": payload, "t": round(self.clock.now() - self.t0, 6)})
        if isinstance(data, DrainRequest) and self.dialect == "genesys":
            # the Genesys driver's words (drivers/genesys-sdk): the client library's callback
            self._emit("drain_requested", {"source": "sdk", "standing": self.drain_answer})
        if isinstance(data, DrainRequest) and self.drain_answer != "none":
            self._answer(self.drain_answer)

    def _answer(self, status: str) -> bool:
        if self.client is None:
            return False
        try:
            self.client.answer_drain(status)
        except NotConnected:
            return False
        if self.dialect == "genesys":
            self._emit("drain_answered", {"with": status})
        return True

    def _client(self) -> StreamingClient:
        if self.client is None:
            self._build()
        assert self.client is not None
        return self.client

    def _build(self) -> None:
        config = dict(self.config)
        urls = config.pop("urls", None) or ([config.pop("url")] if "url" in config else None)
        config.pop("url", None)
        if not urls:
            raise CommandError("no server URL: pass 'url' or 'urls' to configure or connect")
        token, jwt = config.pop("token", None), config.pop("jwt", None)
        recovery_token = config.pop("recovery_token", None)
        config.pop("user", None)  # for SDK drivers whose login names the user; ours uses the token
        # The runner passes the dialect's HTTP prelude as ``server`` and a dialect's own
        # settings under its name (``mixer: {...}``): they configure the wire, not the policy.
        wire_options = dict(config.pop(self.dialect, None) or {})
        # The dialect's key also carries settings of that service's own SDK (a node driver's
        # mixer: {ping_timeout}); the ones this client's wire does not take are set aside.
        accepted = wire_parameters(self.dialect)
        if "*" not in accepted:
            ignored = sorted(set(wire_options) - accepted)
            for key in ignored:
                del wire_options[key]
            if ignored:
                logging.getLogger(__name__).warning(
                    "%s options not used by the reference client: %s", self.dialect, ignored
                )
        if "timescale" in accepted:  # a wire whose server keeps real time (Engine.IO pings)
            wire_options.setdefault("timescale", self.clock.timescale)
        if config.get("server") is not None:
            wire_options["server"] = config.pop("server")
        config.pop("server", None)
        for name in ("mixer", "ringcentral", "genesys", "rtccafe"):
            config.pop(name, None)
        policy = Policy().replace(**{**config, **self.overrides})
        self.client = StreamingClient(
            urls,
            token=token,
            jwt=jwt,
            clock=self.clock,
            rng=self.rng,
            policy=policy,
            recovery_token=recovery_token,
            dialect=client_wire(self.dialect, **wire_options),
        )
        self.client.on("*", self._on_event)

    async def run_command(self, line: str) -> None:
        try:
            command = json.loads(line)
        except ValueError as exc:
            self.write({"reply": None, "ok": False, "error": f"not JSON: {exc}"})
            return
        if not isinstance(command, dict):
            self.write({"reply": None, "ok": False, "error": "a command is a JSON object"})
            return
        ref = command.get("id")
        name = command.get("cmd")
        args = command.get("args") or {}
        handler: Callable[[dict[str, Any]], Awaitable[Any]] | None = getattr(
            self, f"cmd_{str(name).replace('.', '_')}", None
        )
        if name not in COMMANDS or handler is None:
            self.write(
                {
                    "reply": ref,
                    "ok": False,
                    "error": f"unknown command {name!r} (expected one of: {', '.join(COMMANDS)})",
                    "type": "CommandError",
                }
            )
            return
        try:
            result = await handler(args)
        except (ClientError, CommandError, ValueError, TypeError) as exc:
            self.write({"reply": ref, "ok": False, "error": str(exc), "type": type(exc).__name__})
            return
        self.write({"reply": ref, "ok": True, "result": result})

    # --- commands ---------------------------------------------------------------------------------

    async def cmd_configure(self, args: dict[str, Any]) -> Any:
        """Set URLs, credentials and policy for the next connect (rebuilds an idle client)."""
        self.secrets.public(args.get("user"))
        self.secrets.add(args.get("token"), args.get("jwt"), args.get("recovery_token"))
        self.config.update(args)
        if self.client is not None and self.client.status in ("idle", "closed"):
            self.client = None
        if self.client is None:
            self._build()
        assert self.client is not None
        return {"policy": vars(self.client.policy)}

    async def cmd_connect(self, args: dict[str, Any]) -> Any:
        if args:
            await self.cmd_configure(args)
        client = self._client()
        await client.connect()
        return client.snapshot()

    async def cmd_disconnect(self, args: dict[str, Any]) -> Any:
        if self.client is not None:
            await self.client.disconnect()
            return self.client.snapshot()
        return {"status": "idle"}

    async def cmd_reconnect(self, args: dict[str, Any]) -> Any:
        client = self._client()
        await client.reconnect()
        return client.snapshot()

    async def cmd_subscribe(self, args: dict[str, Any]) -> Any:
        return await self._client().subscribe(_topics(args))

    async def cmd_unsubscribe(self, args: dict[str, Any]) -> Any:
        return await self._client().unsubscribe(_topics(args))

    async def cmd_call(self, args: dict[str, Any]) -> Any:
        if "method" not in args:
            raise CommandError("call needs 'method'")
        return await self._client().call(
            args["method"],
            args.get("params", args.get("args")),
            timeout=args.get("timeout"),
            no_reply=bool(args.get("no_reply", False)),
        )

    async def cmd_answer_drain(self, args: dict[str, Any]) -> Any:
        """Set the standing answer to reconnect requests, and answer one outstanding now."""
        answer = args.get("with", args.get("status"))
        if answer not in DRAIN_ANSWERS:
            raise CommandError(
                f"answer_drain 'with' must be one of {DRAIN_ANSWERS}, got {answer!r}"
            )
        self.drain_answer = answer
        answered = answer != "none" and self._answer(answer)
        return {"standing": answer, "answered_now": answered}

    async def cmd_join_room(self, args: dict[str, Any]) -> Any:
        return await self._client().join_room(args["room"], permanent_id=args.get("permanent_id"))

    async def cmd_leave_room(self, args: dict[str, Any]) -> Any:
        return await self._client().leave_room(args["room"])

    async def cmd_send_message(self, args: dict[str, Any]) -> Any:
        self._client().send_message(args.get("message"), args.get("to"), room=args.get("room"))

    async def cmd_send_signal(self, args: dict[str, Any]) -> Any:
        self._client().send_signal(args["room"], args["kind"], args.get("data"), to=args.get("to"))

    async def cmd_define_track(self, args: dict[str, Any]) -> Any:
        return self._client().define_track(args["room"], args["track"])

    async def cmd_remove_track(self, args: dict[str, Any]) -> Any:
        self._client().remove_track(args["room"], args["track_id"])

    async def cmd_request_track(self, args: dict[str, Any]) -> Any:
        self._client().request_track(args["room"], args["to"], args["track_id"])

    async def cmd_status(self, args: dict[str, Any]) -> Any:
        if self.client is None:
            return {"status": "idle"}
        return self.client.snapshot()

    async def cmd_quit(self, args: dict[str, Any]) -> Any:
        await self.close()
        self.done.set()
        return None

    async def close(self) -> None:
        """Close every peer connection (if WebRTC is on), then the client; idempotent."""
        if self.webrtc is not None:
            webrtc, self.webrtc = self.webrtc, None
            await webrtc.close()
        if self.client is not None:
            await self.client.disconnect()

    # --- the WebRTC extension (docs/driver.md#webrtc) --------------------------------------------

    def _emit(self, event: str, data: Any) -> None:
        self.write({"event": event, "data": data, "t": round(self.clock.now() - self.t0, 6)})

    async def cmd_webrtc_enable(self, args: dict[str, Any]) -> Any:
        """Attach the WebRTC extension to this client; do it before ``join_room``."""
        if self.webrtc is None:
            from .webrtc.driver import WebRTCDriver

            client = self._client()
            if client.snapshot().get("rooms"):
                raise CommandError("enable WebRTC before joining a room")
            self.webrtc = WebRTCDriver(
                client,
                self._emit,
                permanent_id=args.get("permanent_id"),
                name=str(self.config.get("token") or "client"),
            )
        return {"enabled": True, "commands": list(WEBRTC_COMMANDS)}

    def _rtc(self) -> Any:
        if self.webrtc is None:
            raise CommandError("WebRTC is not enabled: send webrtc.enable before join_room")
        return self.webrtc

    async def cmd_webrtc_add_track(self, args: dict[str, Any]) -> Any:
        return await self._rtc().add_track(args)

    async def cmd_webrtc_remove_track(self, args: dict[str, Any]) -> Any:
        return await self._rtc().remove_track(args)

    async def cmd_webrtc_request_peer_track(self, args: dict[str, Any]) -> Any:
        return await self._rtc().request_peer_track(args)

    async def cmd_webrtc_remove_peer_track(self, args: dict[str, Any]) -> Any:
        return await self._rtc().remove_peer_track(args)

    async def cmd_webrtc_send_message(self, args: dict[str, Any]) -> Any:
        return await self._rtc().send_message(args)

    async def cmd_webrtc_status(self, args: dict[str, Any]) -> Any:
        return await self._rtc().status(args)

    async def cmd_webrtc_media_report(self, args: dict[str, Any]) -> Any:
        return await self._rtc().media_report(args)

    async def cmd_webrtc_stats(self, args: dict[str, Any]) -> Any:
        return await self._rtc().stats(args)


def _topics(args: dict[str, Any]) -> list[str]:
    topics = args.get("topics", args.get("topic"))
    if isinstance(topics, str):
        return [topics]
    if not isinstance(topics, list) or not topics:
        raise CommandError("'topics' must be a non-empty list of strings")
    return topics


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def build_parser() -> argparse.ArgumentParser:
    """The driver's flags; ``squall run --help`` lists them for ``--client 'reference ...'``."""
    parser = argparse.ArgumentParser(
        prog="python -m squall.client.driver",
        description="Run the squall reference client behind the JSON-lines driver protocol.",
    )
    parser.add_argument(
        "--timescale", type=float, default=1.0, help="real seconds per protocol second"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for backoff jitter")
    parser.add_argument("--debug", action="store_true", help="log every frame to stderr")
    parser.add_argument(
        "--ca-file",
        default=None,
        metavar="PEM",
        help="CA certificates that wss:// servers must chain to (default: the system's); "
        "the policy key ca_file in configure does the same. Verification cannot be turned off",
    )
    parser.add_argument(
        "--dialect",
        default="reference",
        help="the wire the client speaks: reference (default), mixer, ringcentral, rtccafe, "
        "genesys",
    )
    broken = parser.add_argument_group("deliberately broken behaviours (for the conformance suite)")
    broken.add_argument("--no-resubscribe", action="store_true", help="never re-create topics")
    broken.add_argument(
        "--retry-auth-failure", action="store_true", help="reconnect after auth_failed"
    )
    broken.add_argument("--no-recover", action="store_true", help="never present a recovery token")
    return parser


def overrides_from(ns: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ns.no_resubscribe:
        out["resubscribe"] = False
    if ns.retry_auth_failure:
        out["retry_auth_failure"] = True
    if ns.no_recover:
        out["recover"] = False
    if ns.debug:
        out["debug"] = True
    if ns.ca_file:
        out["ca_file"] = ns.ca_file
    return out


async def serve(
    stdin: TextIO, stdout: TextIO, ns: argparse.Namespace, secrets: Secrets | None = None
) -> None:
    def write(obj: dict[str, Any]) -> None:
        stdout.write(json.dumps(obj, default=str, separators=(",", ":")) + "\n")
        stdout.flush()

    driver = Driver(
        write,
        timescale=ns.timescale,
        overrides=overrides_from(ns),
        seed=ns.seed,
        dialect=ns.dialect,
        secrets=secrets,
    )
    tasks: set[asyncio.Task[None]] = set()
    behaviours = list(getattr(client_wire(ns.dialect), "behaviours", ()))
    ready = {"commands": list(COMMANDS), "behaviours": behaviours}
    driver.write({"event": "driver_ready", "data": ready, "t": 0.0})
    lines = _read_lines(stdin)
    stop = asyncio.ensure_future(driver.done.wait())
    while not driver.done.is_set():
        read = asyncio.ensure_future(lines.get())
        await asyncio.wait({read, stop}, return_when=asyncio.FIRST_COMPLETED)
        if not read.done():
            read.cancel()
            break
        line = read.result()
        if not line:
            break
        if not line.strip():
            continue
        task = asyncio.ensure_future(driver.run_command(line))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    await driver.close()


def _read_lines(stdin: TextIO) -> asyncio.Queue[str]:
    """Lines of ``stdin`` from a daemon thread: a blocked read never holds up exiting."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str] = asyncio.Queue()

    def pump() -> None:
        while True:
            line = stdin.readline()
            loop.call_soon_threadsafe(queue.put_nowait, line)
            if not line:
                return

    threading.Thread(target=pump, name="driver-stdin", daemon=True).start()
    return queue


def main(argv: list[str] | None = None) -> int:
    ns = parse_args(argv)
    secrets = Secrets()
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if ns.debug else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(secrets.log_filter())
    try:
        asyncio.run(serve(sys.stdin, sys.stdout, ns, secrets))
    except Exception:  # a crash's traceback goes to stderr, scrubbed like the rest
        sys.stderr.write(secrets.scrub_text(traceback.format_exc()))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
