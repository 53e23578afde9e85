"""Helpers of the ML-server tests: tiny model files and a raw client (fixtures: conftest.py).

The raw client (:func:`send`, :func:`info`, :func:`run`) is written from the protocol itself —
sockets, the 12-digit length header, the generated messages — and shares no framing or image
code with ``nodegraph.serve``, so a mistake there cannot hide behind the same mistake here.
Every server a test starts listens on 127.0.0.1 with a free port and is stopped after the test.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import torch

from nodegraph import channels as chans
from nodegraph.ml import infer
from nodegraph.ml.modelfile import save_cat
from nodegraph.ml.network import NetworkConfig, build_network
from nodegraph.serve import mlserver_pb2 as pb

TINY = dict(size="small", widths=(4, 4, 4), enc_blocks=(1, 0, 0), dec_blocks=(0, 0, 1), scales=2)
KNOBS = [
    {"name": "strength", "type": "float", "default": 0.5, "min": 0, "max": 1},
    {"name": "steps", "type": "int", "default": 2, "min": 1, "max": 8},
    {"name": "invert", "type": "bool", "default": False},
    {"name": "mode", "type": "enum", "choices": ["fast", "best"]},
    {"name": "offset", "type": "xy", "default": [0.0, 0.0]},
]
#: Seconds any single socket operation of a test may wait.
IO_TIMEOUT = 60.0


def tiny_cat(path: Path, cin: int = 3, cout: int = 3, knobs=(), seed: int = 0) -> Path:
    """A small nodegraph network whose output visibly differs from its input."""
    torch.manual_seed(seed)
    config = NetworkConfig(in_channels=cin, out_channels=cout, **TINY)
    net = build_network(config)
    with torch.no_grad():
        net.head.weight.mul_(50)
    names_in = list(chans.RGBA[:cin])
    names_out = list(chans.RGBA[:cout]) if cout != 1 else ["matte.alpha"]
    return save_cat(path, net, config=config, channels_in=names_in, channels_out=names_out, model_id=path.stem,
                    knobs=knobs)


# --- a raw client, from the protocol ------------------------------------------------------------------

def send(address, payload: bytes, *, half_close: bool = True) -> bytes:
    """Send raw bytes on a new connection and return everything the server sends until it closes."""
    with socket.create_connection(address, timeout=IO_TIMEOUT) as sock:
        sock.sendall(payload)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(1 << 20):
            chunks.append(chunk)
    return b"".join(chunks)


def request_bytes(message: pb.RequestWrapper) -> bytes:
    body = message.SerializeToString()
    return b"%012d" % len(body) + body  # the client's length counts the message only


def parse_answer(raw: bytes) -> pb.RespondWrapper:
    """Check the server's framing (its length counts its 12 header bytes too) and parse."""
    assert len(raw) >= 12 and raw[:12].isdigit(), raw[:40]
    assert int(raw[:12]) == len(raw), (int(raw[:12]), len(raw))
    answer = pb.RespondWrapper()
    answer.ParseFromString(raw[12:])
    return answer


def exchange(address, message: pb.RequestWrapper) -> pb.RespondWrapper:
    return parse_answer(send(address, request_bytes(message)))


def info(address) -> pb.RespondWrapper:
    message = pb.RequestWrapper(info=True)
    message.r1.info = True
    return exchange(address, message)


def wire_image(pixels: torch.Tensor) -> pb.Image:
    """[C, H, W] with row 0 at the top -> the wire's float32 LE planar bytes, rows bottom-up."""
    c, h, w = pixels.shape
    data = np.ascontiguousarray(pixels.numpy()[:, ::-1, :], dtype="<f4").tobytes()
    return pb.Image(width=w, height=h, channels=c, image=data)


def from_wire(image: pb.Image) -> torch.Tensor:
    arr = np.frombuffer(image.image, dtype="<f4").reshape(image.channels, image.height, image.width)
    return torch.from_numpy(arr[:, ::-1, :].copy())


def inference_request(model: str, pixels: torch.Tensor | None = None, *, image: pb.Image | None = None,
                      **options) -> pb.RequestWrapper:
    """An inference request; ``options`` name=value become options of the matching kind."""
    message = pb.RequestWrapper(info=True)
    message.r2.model.name = model
    message.r2.model.label = model
    for name, value in options.items():
        m = message.r2.model
        if isinstance(value, bool):
            m.bool_options.add(name=name, values=[value])
        elif isinstance(value, int):
            m.int_options.add(name=name, values=[value])
        elif isinstance(value, float):
            m.float_options.add(name=name, values=[value])
        elif isinstance(value, (list, tuple)):
            m.float_options.add(name=name, values=list(value))
        else:
            m.string_options.add(name=name, values=[value])
    message.r2.images.append(image if image is not None else wire_image(pixels))
    return message


def run(address, model: str, pixels: torch.Tensor, **options) -> torch.Tensor:
    """The server's result for ``pixels`` (fails the test on an Error answer)."""
    answer = exchange(address, inference_request(model, pixels, **options))
    assert not answer.HasField("error"), answer.error.msg
    assert answer.r2.num_images == 1 and len(answer.r2.images) == 1
    return from_wire(answer.r2.images[0])


def error_of(answer: pb.RespondWrapper) -> str:
    assert answer.HasField("error"), f"expected an Error answer, got {answer}"
    return answer.error.msg


def local(path: Path, pixels: torch.Tensor, **knobs) -> torch.Tensor:
    """The same model run locally (the Inference node's code path) on the CPU."""
    settings = infer.InferenceSettings(knob_values=knobs)
    return infer.infer_frames(path, pixels[None], settings)[0]
