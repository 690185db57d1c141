"""Loopback-only ICE for the client: see :mod:`squall.media.ice`, where it lives so the
simulator's fake peer can use it too (the simulator must not import the client)."""

from squall.media.ice import (
    LOOPBACK,
    acquire,
    active,
    loopback_host_addresses,
    loopback_ice,
    release,
    rtc_configuration,
)

__all__ = [
    "LOOPBACK",
    "acquire",
    "active",
    "loopback_host_addresses",
    "loopback_ice",
    "release",
    "rtc_configuration",
]
