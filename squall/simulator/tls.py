"""TLS for the simulator: a server context from a cert/key pair, or from a throwaway local CA.

``wss://`` is the only way most SDKs are ever pointed at a real service, so the stand-in has
to speak it too. Two sources of a certificate:

- the user's own PEM files (:func:`server_context`), e.g. from mkcert or a company CA;
- :func:`local_ca`: a CA made on the spot with trustme and a server certificate it signs
  for ``127.0.0.1``, ``localhost`` and ``::1``. Its CA PEM is written to a file, the one
  thing a client needs to trust the server (``NODE_EXTRA_CA_CERTS``, ``--ca-file``,
  ``SSL_CERT_FILE``). The CA's key never leaves memory: nothing else can be signed with it.
"""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path

#: The names a local certificate is valid for: every address ``squall serve`` may bind here.
LOCAL_IDENTITIES = ("127.0.0.1", "localhost", "::1")

TLSOption = ssl.SSLContext | tuple[str | Path, str | Path] | None
"""What ``Simulator(tls=...)`` takes: a server context, a (cert, key) pair of PEM paths, or
None for plain ``ws://``."""


class TLSConfigError(ValueError):
    """A certificate or key that cannot be loaded; the message names the file and the reason."""


def server_context(cert: str | Path, key: str | Path | None = None) -> ssl.SSLContext:
    """A server context for ``cert`` (PEM, chain allowed) and ``key`` (None: inside ``cert``)."""
    for path in (cert, key):
        if path is not None and not Path(path).is_file():  # ssl's own error names no file
            raise TLSConfigError(f"TLS certificate or key not found: {path}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        shown = f"{cert}" if key is None else f"{cert} with key {key}"
        raise TLSConfigError(f"cannot load TLS certificate {shown}: {exc}") from None
    return context


def resolve(tls: TLSOption) -> ssl.SSLContext | None:
    """``Simulator(tls=...)``'s argument as a context (a pair is loaded here, so a bad file
    fails when the simulator is built, not on the first handshake)."""
    if tls is None or isinstance(tls, ssl.SSLContext):
        return tls
    if isinstance(tls, tuple) and len(tls) == 2:
        return server_context(*tls)
    raise TypeError(f"tls must be an ssl.SSLContext, a (cert, key) pair of paths or None: {tls!r}")


@dataclasses.dataclass(frozen=True)
class LocalCA:
    """A throwaway CA and the server certificate it signed; ``ca_file`` is what clients trust."""

    ca_file: Path
    context: ssl.SSLContext
    ca_pem: bytes

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this CA (and nothing else)."""
        return ssl.create_default_context(cadata=self.ca_pem.decode("ascii"))


def local_ca(directory: str | Path, identities: tuple[str, ...] = LOCAL_IDENTITIES) -> LocalCA:
    """Make a CA and a server certificate for ``identities``; write the CA PEM to ``directory``.

    trustme is imported here: only ``squall serve --tls`` and tests need it.
    """
    try:
        import trustme
    except ImportError:
        raise TLSConfigError(
            "generating a local CA needs the trustme package (pip install trustme), "
            "or pass your own certificate with --tls-cert/--tls-key"
        ) from None
    ca = trustme.CA(organization_name="squall local CA")
    leaf = ca.issue_cert(*identities, organization_name="squall simulator")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    path = Path(directory) / "squall-ca.pem"
    path.parent.mkdir(parents=True, exist_ok=True)
    ca.cert_pem.write_to_path(str(path))
    return LocalCA(ca_file=path.resolve(), context=context, ca_pem=ca.cert_pem.bytes())
