"""A step pack: ``expect.client_status`` asks a client's driver for its status until it
reports the one wanted. Publish a pack as an entry point (pyproject.toml):

    [project.entry-points."squall.steps"]
    status = "step_pack"

Run as a script, it registers itself (before squall.conformance.models is imported,
which builds the step set) and runs a scenario against the reference client.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar

from pydantic import Field

from squall.conformance.base import Args, Name, Within
from squall.conformance.context import RunContext, StepFailed
from squall.conformance.verdicts import StepResult


class ExpectClientStatus(Args, Within):
    """The client's driver reports ``status`` (and these ``subscriptions``) within ``within``."""

    _shorthand: ClassVar[str | None] = None
    client: Name
    status: str = Field(min_length=1, description="connected, closed, ...")
    subscriptions: list[str] | None = Field(None, description="exactly these topics")


async def expect_client_status(
    ctx: RunContext, args: ExpectClientStatus, step: StepResult
) -> str | None:
    last: dict[str, Any] = {}

    async def reported() -> bool:
        reply = await ctx.command(args.client, "status", {}, wait=True)
        last.update((reply or {}).get("result") or {})
        subscriptions = args.subscriptions
        return last.get("status") == args.status and (
            subscriptions is None or sorted(last.get("subscriptions", [])) == sorted(subscriptions)
        )

    # a status changes without an event for it: ask again on every record, or every 0.1 s
    if not await ctx.until(reported, within=args.within, poll=0.1):
        raise StepFailed(
            f"{args.client} reports status {args.status!r} within {args.within:g}s",
            f"it reports {last.get('status')!r}, subscriptions {last.get('subscriptions')}",
        )
    ctx.record("runner", "client_status", client=args.client, status=last.get("status"))
    return ctx.late(step, args.within, ctx.now())  # None when on time: OK, else NON-STRICT


STEP_ARGS: dict[str, type[Args]] = {"expect.client_status": ExpectClientStatus}
HANDLERS = {"expect.client_status": expect_client_status}

SCENARIO = """
id: example.client_status
title: a connected client reports its subscriptions; a disconnected one is closed
timescale: 0.01
clients: {alice: {token: alice}}
steps:
  - client.connect: alice
  - client.subscribe: {client: alice, topics: [news], wait: true}
  - expect.client_status: {client: alice, status: connected, subscriptions: [news]}
  - client.disconnect: {client: alice, wait: true}
  - expect.client_status: {client: alice, status: closed}
"""


def main() -> int:
    from squall.conformance.packs import register_pack

    register_pack(sys.modules[__name__])  # before the next import builds the step set
    from squall.conformance.loader import parse
    from squall.conformance.runner import run_sync

    result = run_sync(parse(SCENARIO, "example.yaml"))
    print(result.verdict.value, result.headline() or "every step held")
    for step in result.steps:
        print(f"  {step.label}: {step.status.value}")
    return 0 if result.verdict.passed else 1


if __name__ == "__main__":
    sys.exit(main())
