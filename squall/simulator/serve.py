"""Run the simulator as a stand-in backend until interrupted, printing its URLs.

With ``--tls`` it serves wss:// (and https:// for the HTTP faces) with a certificate for
127.0.0.1, localhost and ::1 signed by a CA made at start; the CA's PEM file is printed
(``ca-file``) for the SDK under test to trust, e.g. ``NODE_EXTRA_CA_CERTS=<path> node ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
import sys
import tempfile
from pathlib import Path

from squall.clock import LoopClock
from squall.secrets import Secrets

from .auth import AuthPolicy
from .control import ControlError
from .core import Config
from .dialects import names as dialect_names
from .server import Simulator
from .tls import TLSConfigError, local_ca, server_context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="WebSocket bind address")
    parser.add_argument(
        "--port",
        type=int,
        action="append",
        default=None,
        help="WebSocket port (repeat for several endpoints; 0 = any free port; "
        "default: one endpoint on any free port)",
    )
    parser.add_argument("--control-host", default="127.0.0.1", help="HTTP control API bind address")
    parser.add_argument(
        "--control-port",
        type=int,
        default=0,
        help="HTTP control API port (default 0: any free port; docs/control-api.md)",
    )
    parser.add_argument(
        "--control-token",
        default=None,
        help="bearer token for the control API (required off loopback)",
    )
    parser.add_argument(
        "--timescale",
        type=float,
        default=1.0,
        help="protocol seconds per real second divisor (0.01 = 100x faster)",
    )
    parser.add_argument(
        "--recovery-buffer-size",
        type=int,
        default=Config.recovery_buffer_size,
        metavar="N",
        help="notifications kept per detached session for its recovery; older ones are "
        f"dropped and reported lost (default {Config.recovery_buffer_size})",
    )
    parser.add_argument(
        "--dialect",
        default="reference",
        choices=dialect_names(),
        help="the backend to stand in for: its wire protocol and HTTP routes (default reference)",
    )
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="TOKEN=USER",
        type=_token,
        help="accept TOKEN as USER (repeatable); given once, only listed tokens authenticate. "
        "Without it any non-empty token is accepted as its own user name",
    )
    parser.add_argument(
        "--transcript", default=None, help="write the transcript (JSON lines) here on exit"
    )
    tls = parser.add_argument_group("TLS (docs/client.md#tls)")
    tls.add_argument(
        "--tls",
        action="store_true",
        help="serve wss:// and https:// with a certificate from a CA made now (trustme); "
        "prints the CA file to give the client (NODE_EXTRA_CA_CERTS, --ca-file)",
    )
    tls.add_argument(
        "--tls-dir",
        default=None,
        metavar="DIR",
        help="write the CA file (squall-ca.pem) here and keep it; default: a temporary "
        "directory removed on exit",
    )
    tls.add_argument(
        "--tls-cert", default=None, metavar="PEM", help="your own certificate (chain) instead"
    )
    tls.add_argument(
        "--tls-key", default=None, metavar="PEM", help="its key (default: inside --tls-cert)"
    )
    limits = parser.add_argument_group("limits (docs/protocol.md §9)")
    limits.add_argument(
        "--transcript-max-records",
        type=_count,
        default=TRANSCRIPT_MAX_RECORDS,
        metavar="N",
        help="keep the newest N transcript records, dropping (and counting) older ones; "
        f"0 = unbounded (default {TRANSCRIPT_MAX_RECORDS:,})",
    )
    limits.add_argument(
        "--max-message-size",
        type=_positive,
        default=Config.max_message_size,
        metavar="BYTES",
        help="largest message a client may send; larger ones close with 1009 "
        f"(default {Config.max_message_size})",
    )
    limits.add_argument(
        "--fragment-timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="real seconds a fragmented message may take from first to last fragment; "
        "then 1008 (0 = no limit; default 10)",
    )
    limits.add_argument(
        "--open-timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="real seconds the opening handshake may take before the TCP connection is "
        "dropped (0 = no limit; default 10)",
    )


#: ``squall serve``'s transcript bound: about 60 MB at the ~600 bytes a record takes (a
#: connection's open, auth, session, frames and close are 8), hours of a busy stand-in.
TRANSCRIPT_MAX_RECORDS = 100_000


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


def _positive(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected 0 or more seconds, got {text}")
    return value


def _token(text: str) -> tuple[str, str]:
    token, sep, user = text.partition("=")
    if not sep or not token or not user:
        raise argparse.ArgumentTypeError(f"expected TOKEN=USER, got {text!r}")
    return token, user


def _tls(args: argparse.Namespace, scratch: str) -> tuple[ssl.SSLContext | None, Path | None]:
    """The server context ``--tls``/``--tls-cert`` ask for, and the CA file made for it."""
    if args.tls_key and not args.tls_cert:
        raise TLSConfigError("--tls-key needs --tls-cert")
    if args.tls_cert:
        return server_context(args.tls_cert, args.tls_key), None
    if not args.tls:
        return None, None
    made = local_ca(args.tls_dir or scratch)
    return made.context, made.ca_file


async def serve(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="squall-tls-") as scratch:
        tls, ca_file = _tls(args, scratch)
        return await _serve(args, tls, ca_file)


async def _serve(args: argparse.Namespace, tls: ssl.SSLContext | None, ca_file: Path | None) -> int:
    config = Config(
        recovery_buffer_size=args.recovery_buffer_size, max_message_size=args.max_message_size
    )
    auth = AuthPolicy(tokens=dict(args.token)) if args.token else AuthPolicy()
    sim = Simulator(
        clock=LoopClock(args.timescale),
        config=config,
        auth=auth,
        host=args.host,
        dialect=args.dialect,
        open_timeout=args.open_timeout or None,
        fragment_timeout=args.fragment_timeout or None,
        transcript_max_records=args.transcript_max_records or None,
        tls=tls,
    )
    # Every token it was given, and each recovery token it issues, is masked in the transcript.
    sim.core.transcript.secrets = Secrets(auth.tokens or ())
    for port in args.port or [0]:
        await sim.listen(port)
    await sim.start(
        ports=0,
        control_port=args.control_port,
        control_host=args.control_host,
        control_token=args.control_token,
    )
    # Before the URLs are printed: whoever reads them may send SIGTERM at once.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"dialect    {sim.dialect.name}", flush=True)
    for url in sim.urls:  # a dialect with its own transport (Socket.IO) is served on http(s)
        kind = "websocket" if url.startswith(("ws://", "wss://")) else "socket.io"
        print(f"{kind:<10} {url}", flush=True)
    if sim.http_url:
        print(f"http       {sim.http_url}", flush=True)
    print(f"control    {sim.control_url}", flush=True)
    if ca_file is not None:
        print(f"ca-file    {ca_file}", flush=True)
        print(f"trust      NODE_EXTRA_CA_CERTS={ca_file} (node), --ca-file (squall)", flush=True)
    await stop.wait()
    await sim.stop()
    if args.transcript:
        sim.core.transcript.dump(args.transcript)
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(serve(args))
    except (ControlError, OSError, TLSConfigError) as exc:  # a refused option, a port in use,
        # a certificate that cannot be loaded: one line
        print(f"squall serve: {exc}", file=sys.stderr)
        return 2
