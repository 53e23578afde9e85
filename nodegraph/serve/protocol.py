"""Foundry ML-Server's wire protocol: framing, image encoding, channel names, and the errors.

One request per TCP connection. The client sends 12 ASCII decimal digits, zero-padded, giving
the length of the serialized ``RequestWrapper`` that follows (the message alone). The server
answers with 12 digits giving the length of its ``RespondWrapper`` *plus the 12 bytes of the
header itself*, then the message, and closes the connection (Foundry's MLClient reads an
inference answer until the server closes). Images travel as ``Image{width, height, channels,
image}``: float32 little-endian, planar (all of the first channel, then the next), rows
bottom-up (Nuke's y-up order). nodegraph's tensors are ``[C, H, W]`` with row 0 at the top, so
both sides flip rows when converting.

Facts read from Foundry's public nuke-ML-server repository (message.proto, the Python server
and the C++ MLClient); the code here is nodegraph's own.
"""

from __future__ import annotations

import socket
import time

import numpy as np
import torch

from nodegraph import channels as chans
from nodegraph.errors import NodeGraphError

from . import mlserver_pb2 as pb

#: Bytes of the length header that precedes every message.
HEADER_BYTES = 12
#: The default port of Foundry's ML-Server and MLClient.
DEFAULT_PORT = 55555
#: The name of the string option that carries the shared token (see ``nodegraph serve --token``).
TOKEN_OPTION = "token"


class ServeError(NodeGraphError):
    """A failure of the ML server or of a client talking to one."""


class ProtocolError(ServeError):
    """Bytes on the wire that do not follow the protocol (framing, message, image size)."""


class TruncatedError(ProtocolError):
    """The peer closed the connection before the whole message came; ``received`` bytes did."""

    def __init__(self, message: str, received: int) -> None:
        super().__init__(message)
        self.received = received


class ServerUnavailableError(ServeError):
    """The server cannot be reached (refused, timed out, closed the connection early)."""


class RemoteError(ServeError):
    """The server answered with an ``Error`` message (its text is the message)."""


# --- framing --------------------------------------------------------------------------------------

def encode_header(length: int) -> bytes:
    """``length`` as 12 zero-padded ASCII digits."""
    if not 0 <= length < 10 ** HEADER_BYTES:
        raise ProtocolError(f"a message of {length} bytes cannot be framed")
    return str(length).zfill(HEADER_BYTES).encode("ascii")


def parse_header(raw: bytes) -> int:
    """The length a 12-byte header gives; :class:`ProtocolError` unless it is 12 ASCII digits."""
    if len(raw) != HEADER_BYTES or not raw.isdigit():
        raise ProtocolError(f"malformed length header {raw[:HEADER_BYTES]!r}: expected {HEADER_BYTES} "
                            "zero-padded ASCII decimal digits")
    return int(raw)


def recv_exactly(sock: socket.socket, n: int, *, idle: float | None, deadline: float | None = None,
                 what: str = "message") -> bytearray:
    """Exactly ``n`` bytes from ``sock``. Each wait is bounded by ``idle`` seconds and the whole read
    by ``deadline`` (a ``time.monotonic()`` value); ``socket.timeout`` when either passes,
    :class:`TruncatedError` when the peer closes first. A bytearray: protobuf parses it as it is,
    sparing a copy of a frame's worth of pixels."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        wait = idle
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout(f"{what} not received in time")
            wait = left if wait is None else min(wait, left)
        sock.settimeout(wait)
        k = sock.recv_into(view[got:], min(n - got, 4 << 20))
        if k == 0:
            raise TruncatedError(f"truncated {what}: the connection closed after {got} of {n} bytes", got)
        got += k
    return buf


def send_message(sock: socket.socket, message: pb.RequestWrapper | pb.RespondWrapper) -> None:
    """Header and message, as a client sends a request (the length counts the message alone) or
    the server an answer (the length counts the 12 header bytes too); sent in two writes rather
    than joined, which would copy the pixels once more."""
    data = message.SerializeToString()
    extra = HEADER_BYTES if isinstance(message, pb.RespondWrapper) else 0
    sock.sendall(encode_header(extra + len(data)))
    sock.sendall(data)


def error_response(text: str) -> pb.RespondWrapper:
    out = pb.RespondWrapper(info=True)
    out.error.msg = text
    return out


# --- images ---------------------------------------------------------------------------------------

def fill_image(image: pb.Image, pixels: torch.Tensor) -> pb.Image:
    """Set ``image`` (a message, typically just added to a request or answer, so the pixels are
    copied into it once) from ``[C, H, W]`` with row 0 at the top: float32 LE, planar, rows bottom-up."""
    c, h, w = pixels.shape
    arr = pixels.detach().to("cpu", torch.float32).numpy()
    image.width, image.height, image.channels = w, h, c
    image.image = arr[:, ::-1].astype("<f4", copy=False).tobytes()  # one pass: rows turned over as copied
    return image


def image_to_tensor(image: pb.Image, *, channels: int | None = None, max_pixels: int | None = None,
                    what: str = "image") -> torch.Tensor:
    """An ``Image`` message -> ``[C, H, W]`` float32 (row 0 at the top), checked: positive sizes,
    ``channels`` if given, at most ``max_pixels`` pixels, and exactly ``W*H*C*4`` bytes."""
    for field in ("width", "height", "channels", "image"):
        if not image.HasField(field):
            raise ProtocolError(f"{what} has no {field}")
    w, h, c = image.width, image.height, image.channels
    if w <= 0 or h <= 0 or c <= 0:
        raise ProtocolError(f"{what} has size {w}x{h} with {c} channel(s); all must be positive")
    if channels is not None and c != channels:
        raise ProtocolError(f"{what} has {c} channel(s); the model takes {channels}")
    if max_pixels is not None and w * h > max_pixels:
        raise ProtocolError(f"{what} of {w}x{h} has more than the limit of {max_pixels:,} pixels")
    expected = w * h * c * 4
    if len(image.image) != expected:
        raise ProtocolError(f"{what} of {w}x{h}x{c} needs {expected:,} bytes of float32, it carries "
                            f"{len(image.image):,}")
    arr = np.frombuffer(image.image, dtype="<f4").reshape(c, h, w)[:, ::-1]
    return torch.from_numpy(np.array(arr, dtype=np.float32, order="C", copy=True))  # owns writable memory


# --- channel names in ImagePrototype.name ------------------------------------------------------------

#: Channel lists that a bare channel count stands for when a prototype's name is not a channel list
#: (Foundry's own server names them "image", "output"...): 1 alpha, 3 rgb, 4 rgba.
_BY_COUNT = {1: ("rgba.alpha",), 3: chans.RGB, 4: chans.RGBA}


def channel_spec(names: list[str] | tuple[str, ...]) -> str:
    """The ``ImagePrototype.name`` for a channel list: a Nuke shorthand (``rgb``, ``rgba``,
    ``alpha``, ``depth``) where one fits exactly (it is what Nuke shows on the input arrow), else
    the names joined by commas."""
    for short, full in chans.LAYER_SHORTHANDS.items():
        if tuple(names) == full:
            return short
    return ",".join(names)


def spec_channels(proto: pb.ImagePrototype) -> tuple[str, ...]:
    """Channel names of a prototype: its name read as a channel list when it is one of the right
    length, else the usual names for its channel count (:class:`ProtocolError` if there are none)."""
    n = proto.channels
    try:
        names = chans.expand(proto.name) if proto.name else ()
    except NodeGraphError:
        names = ()
    if len(names) == n and all("." in c for c in names):
        return tuple(names)
    if n in _BY_COUNT:
        return _BY_COUNT[n]
    raise ProtocolError(f"image {proto.name!r} of {n} channels: its name is no list of {n} channel names")


__all__ = ["DEFAULT_PORT", "HEADER_BYTES", "TOKEN_OPTION", "ProtocolError", "RemoteError", "ServeError",
           "ServerUnavailableError", "TruncatedError", "channel_spec", "encode_header", "error_response",
           "fill_image", "image_to_tensor", "parse_header", "pb", "recv_exactly", "send_message", "spec_channels"]
