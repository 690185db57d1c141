"""The real RTCCafe signaller, as tests start it: rtc-cafe-signaller-python 0.2.0 on
Flask-SocketIO, in a subprocess on a free loopback port, stopped when the test is done.

Both the dialect's tests (squall beside the real server) and the reference client's
(the same scenarios against either) use it, with the validator each needs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests import needs

DEADLINE = 10.0  # real seconds: only reached when something is broken

SCRIPT = """
import json, sys
import flask
from flask_socketio import SocketIO
from werkzeug.serving import make_server
from rtc_cafe_signaller.wrappers import flask_socketio_wrapper

options = json.loads(sys.argv[1])
required = options.get("required") or {}

def validate(sid, event, data):
    if options.get("csrf") and isinstance(data, dict) and data.get("csrf") == "bad":
        return "bad csrf"
    for key, value in required.items():
        if not isinstance(data, dict) or data.get(key) != value:
            return f"missing or wrong {key!r}"

app = flask.Flask("rtccafe")
# ping_interval 1: a vanished connection is noticed within seconds, not 25, and
# python-engineio leaves a client's last poll hanging at most that long
socketio = SocketIO(
    app, async_mode="threading", cors_allowed_origins="*",
    ping_interval=1, ping_timeout=options.get("ping_timeout", 2),
)
validating = options.get("csrf") or required
flask_socketio_wrapper.wrap(socketio, validate if validating else None)
server = make_server("127.0.0.1", 0, app, threaded=True)
print(server.port, flush=True)
server.serve_forever()
"""


@contextmanager
def real_rtccafe_server(
    *, required: dict[str, Any] | None = None, csrf: bool = False
) -> Iterator[str]:
    """The server's base URL (``http://127.0.0.1:PORT/``). ``required``: fields every
    validated event must carry (a scenario's ``required_fields``); ``csrf``: refuse data
    whose ``csrf`` is ``"bad"``, as squall's dialect tests configure both servers."""
    try:
        import rtc_cafe_signaller  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        needs.unavailable("rtc-cafe-signaller-python 0.2.0 (and flask-socketio) are needed")
    options = {"required": required or {}, "csrf": csrf}
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, json.dumps(options)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the port, once it listens; "" if it died
        assert line.strip().isdigit(), f"the real server did not start (exit {proc.poll()})"
        yield f"http://127.0.0.1:{line.strip()}/"
    finally:
        proc.terminate()
        proc.wait(DEADLINE)
