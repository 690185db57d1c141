"""Wire formats of the reference protocol: message models and a sans-I/O codec. No I/O here."""

from .codec import decode_client, decode_server, encode
from .errors import (
    InvalidMessage,
    MalformedFrame,
    ProtocolError,
    UnknownMessageType,
    UnsupportedFrame,
)
from .messages import *  # noqa: F403
from .messages import ClientMessage, Message, ServerMessage

__all__ = [
    "ClientMessage",
    "InvalidMessage",
    "MalformedFrame",
    "Message",
    "ProtocolError",
    "ServerMessage",
    "UnknownMessageType",
    "UnsupportedFrame",
    "decode_client",
    "decode_server",
    "encode",
]
