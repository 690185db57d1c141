"""The client's public status, the triggers that move it, and the transition table.

The table is data: reviewed here, rendered into docs/client.md by
:func:`diagram` (through :mod:`squall.client.machine_doc`, next to the tables of
what the core keeps underneath, in :mod:`squall.client.phases`), and enforced by
:func:`next_status`, which names the state and the trigger when a move is illegal
(h11 ``_state.py`` style). tests/client/test_phases.py checks that the core tests
take every move declared here.
"""

from __future__ import annotations

from enum import StrEnum

from .errors import IllegalTransition


class Status(StrEnum):
    IDLE = "idle"  # built, never connected
    CONNECTING = "connecting"  # first connection (or after connect() from CLOSED)
    CONNECTED = "connected"  # authenticated: frames flow, the spool is flushed
    RECONNECTING = "reconnecting"  # lost or asked to move: waiting for backoff or an attempt
    CLOSING = "closing"  # disconnect() called, the socket is closing
    CLOSED = "closed"  # final until connect(): after disconnect(), auth failure or giving up


class Trigger(StrEnum):
    CONNECT = "connect"  # application: connect()
    READY = "ready"  # server: authenticated (and recovery answered)
    LOST = "lost"  # the socket ended or failed, and a retry is due
    FATAL = "fatal"  # auth failure, reconnect disabled, or attempts exhausted
    RECONNECT = "reconnect"  # application: reconnect(); or a drain
    DISCONNECT = "disconnect"  # application: disconnect()
    CLOSED = "closed"  # the socket is gone after disconnect()


S, T = Status, Trigger

TRANSITIONS: dict[Status, dict[Trigger, Status]] = {
    S.IDLE: {T.CONNECT: S.CONNECTING, T.DISCONNECT: S.CLOSING},
    S.CONNECTING: {
        T.READY: S.CONNECTED,
        T.LOST: S.RECONNECTING,
        T.FATAL: S.CLOSED,
        T.RECONNECT: S.CONNECTING,
        T.DISCONNECT: S.CLOSING,
    },
    S.CONNECTED: {
        T.LOST: S.RECONNECTING,
        T.FATAL: S.CLOSED,
        T.RECONNECT: S.RECONNECTING,
        T.DISCONNECT: S.CLOSING,
    },
    S.RECONNECTING: {
        T.READY: S.CONNECTED,
        T.LOST: S.RECONNECTING,
        T.FATAL: S.CLOSED,
        T.RECONNECT: S.RECONNECTING,
        T.DISCONNECT: S.CLOSING,
    },
    # disconnect() while closing or closed is a no-op that never reaches the table.
    S.CLOSING: {T.CLOSED: S.CLOSED},
    S.CLOSED: {T.CONNECT: S.CONNECTING},
}


def next_status(status: Status, trigger: Trigger) -> Status:
    """The status after ``trigger``; raises :class:`IllegalTransition` if the table forbids it."""
    try:
        return TRANSITIONS[status][trigger]
    except KeyError:
        raise IllegalTransition(state=status.value, event=trigger.value) from None


def diagram() -> str:
    """The table as a Mermaid state diagram (for docs/client.md)."""
    lines = ["stateDiagram-v2", "    [*] --> idle"]
    for src, moves in TRANSITIONS.items():
        for trigger, dst in moves.items():
            lines.append(f"    {src.value} --> {dst.value}: {trigger.value}")
    return "\n".join(lines)
