"""TCP addresses the way Go's ``net`` package reads them (``net.Listen``, ``net.Dial``).

Toxiproxy hands a proxy's ``listen`` and ``upstream`` strings to Go unchanged,
so its error messages are Go's: ``address 99999: invalid port``, ``address
127.0.0.1: missing port in address``, ``lookup tcp/nope: unknown port``.
:func:`split_address` reproduces ``SplitHostPort`` plus ``LookupPort`` and
raises :class:`AddressError` with those words; callers add Go's operation
prefix (``listen tcp: ``, ``dial tcp: ``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

PORT_CUTOFF = 1 << 30  # Go's parsePort stops counting here and calls the port invalid
MAX_SERVICE_NAME = 25  # Go's lookupPort refuses longer service names without a lookup


class AddressError(ValueError):
    """A ``host:port`` string Go would refuse; ``str()`` is Go's message."""


def split_hostport(address: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort``: ``host:port`` and ``[v6]:port``, with Go's error words."""

    def fail(why: str) -> AddressError:
        return AddressError(f"address {address}: {why}")

    i = address.rfind(":")
    if i < 0:
        raise fail("missing port in address")
    j = k = 0
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise fail("missing ']' in address")
        if end + 1 == len(address):
            raise fail("missing port in address")
        if end + 1 != i:
            if address[end + 1] == ":":
                raise fail("too many colons in address")
            raise fail("missing port in address")
        host = address[1:end]
        j, k = 1, end + 1
    else:
        host = address[:i]
        if ":" in host:
            raise fail("too many colons in address")
    if "[" in address[j:]:
        raise fail("unexpected '[' in address")
    if "]" in address[k:]:
        raise fail("unexpected ']' in address")
    return host, address[i + 1 :]


def _parse_port(service: str) -> int | None:
    """Go's ``parsePort``: a decimal port (huge values clamp out of range), None to look up."""
    if not service:
        return 0  # Go: an empty port means 0
    sign, digits = 1, service
    if digits[0] in "+-":
        sign, digits = (-1 if digits[0] == "-" else 1), digits[1:]
    if not digits:
        return 0
    if not digits.isascii() or not digits.isdigit():
        return None
    # Eleven significant digits are past the cutoff already: Go clamps there, never overflows.
    n = int(digits.lstrip("0")[:11] or "0")
    return sign * min(n, PORT_CUTOFF)


def lookup_port(service: str) -> int:
    """Go's ``LookupPort("tcp", service)``: decimal or a service name from /etc/services."""
    port = _parse_port(service)
    if port is None:
        name = service.lower()
        try:
            if len(name) > MAX_SERVICE_NAME or not name.isascii() or "\x00" in name:
                raise OSError
            port = socket.getservbyname(name, "tcp")
        except (OSError, ValueError):
            raise AddressError(f"lookup tcp/{service}: unknown port") from None
    if not 0 <= port <= 65535:
        raise AddressError(f"address {service}: invalid port")
    return port


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` to ``(host, port)`` with Go's checks; the host is not resolved here."""
    host, service = split_hostport(address)
    return host, lookup_port(service)


def format_hostport(host: str, port: int) -> str:
    """Go's ``JoinHostPort``: brackets around an IPv6 host."""
    try:
        if ipaddress.ip_address(host.split("%", 1)[0]).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


async def resolve(host: str, port: int) -> tuple[socket.AddressFamily, Any]:
    """``(family, sockaddr)`` of ``host``'s first address (IPv4 first, like Go's
    ``ResolveTCPAddr``), looked up off the event loop."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        raise AddressError(f"lookup {host}: no such host") from None
    if not infos:
        raise AddressError(f"lookup {host}: no such host")
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr  # (host, port) or (host, port, flowinfo, scope_id)
