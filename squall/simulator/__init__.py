"""The fake server: one core under every dialect, a control plane with three faces."""

from .auth import AuthPolicy, make_guest_jwt
from .control import OPERATIONS, Control, ControlError
from .core import Config, SimulatorCore
from .server import Simulator
from .transcript import Transcript

__all__ = [
    "OPERATIONS",
    "AuthPolicy",
    "Config",
    "Control",
    "ControlError",
    "Simulator",
    "SimulatorCore",
    "Transcript",
    "make_guest_jwt",
]
