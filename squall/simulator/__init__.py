"""The fake server: one core under every dialect, a control plane with three faces."""

from .auth import AuthPolicy, make_guest_jwt
from .control import OPERATIONS, Control, ControlError
from .core import Config, SimulatorCore
from .server import Simulator
from .tls import LocalCA, TLSConfigError, local_ca, server_context
from .transcript import Transcript

__all__ = [
    "OPERATIONS",
    "AuthPolicy",
    "Config",
    "Control",
    "ControlError",
    "LocalCA",
    "Simulator",
    "SimulatorCore",
    "TLSConfigError",
    "Transcript",
    "local_ca",
    "make_guest_jwt",
    "server_context",
]
