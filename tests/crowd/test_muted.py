"""The runner's muting of a crowd's server records, on records shaped as the core writes them."""

from __future__ import annotations

from typing import Any

from squall.conformance.runner import MutedUsers


def _open(conn: str, *, credentials: bool = True) -> dict[str, Any]:
    return {"kind": "open", "conn": conn, "credentials": credentials, "recovery": False}


def _through(muted: MutedUsers, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kept = [r for rec in records for r in muted.admit(rec)]
    return kept + muted.flush()


def test_a_muted_users_connection_goes_whole_and_others_stay_in_order() -> None:
    muted = MutedUsers()
    muted.users.add("herd-7")
    herd = [
        _open("c1"),
        {"kind": "session", "session": "s1", "user": "herd-7", "state": "open", "sid": "c1"},
        {"kind": "auth", "conn": "c1", "ok": True, "session": "s1", "user": "herd-7"},
        {"kind": "frame", "dir": "out", "conn": "c1", "session": "s1", "text": "{}"},
        {"kind": "control", "op": "drop", "params": {"session": "s1", "code": None}},
        {"kind": "close", "conn": "c1", "code": 1006},
        _open("c3"),  # its recovery: the session names it, the connection is new
        {"kind": "recovery", "ok": True, "session": "s1", "replayed": 2},
        {"kind": "frame", "dir": "out", "conn": "c3", "session": "s1", "text": "{}"},
    ]
    observer = [
        _open("c2"),
        {"kind": "auth", "conn": "c2", "ok": True, "session": "s2", "user": "observer"},
        {"kind": "frame", "dir": "in", "conn": "c2", "session": "s2", "text": "{}"},
    ]
    publish = {"kind": "publish", "topic": "herd", "delivered": 2}
    kept = _through(muted, herd[:6] + observer + [publish] + herd[6:])
    assert kept == [*observer, publish]
    assert muted.count == len(herd)


def test_an_open_without_credentials_is_kept_at_once_and_a_held_one_at_the_end() -> None:
    muted = MutedUsers()
    muted.users.add("herd-1")
    bare = _open("c1", credentials=False)
    assert muted.admit(bare) == [bare]
    held = _open("c2")
    assert muted.admit(held) == []  # whose it is, the next record says
    assert muted.flush() == [held] and muted.flush() == []
    assert muted.count == 0
