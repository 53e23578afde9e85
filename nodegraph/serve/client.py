"""A client of the ML-Server protocol (nodegraph's server or Foundry's): list models, run one.

Used by the RemoteInference node. Every call opens one TCP connection, sends one request and
reads the answer until the server closes, as the protocol has it. A server's ``Error`` answer is
raised as :class:`~nodegraph.serve.protocol.RemoteError` carrying its text; an unreachable
server as :class:`~nodegraph.serve.protocol.ServerUnavailableError` naming the address.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import torch
from google.protobuf.message import DecodeError

from .protocol import (HEADER_BYTES, TOKEN_OPTION, ProtocolError, RemoteError, ServerUnavailableError,
                       fill_image, image_to_tensor, parse_header, pb, recv_exactly, send_message)

#: Largest answer read (protobuf messages stop at 2 GiB anyway).
MAX_RESPONSE_BYTES = (2 << 30) - 1
#: Seconds an info answer is reused for (a render asks once per this, not once per frame).
INFO_TTL = 10.0


def exchange(host: str, port: int, request: pb.RequestWrapper, *, timeout: float = 600.0) -> pb.RespondWrapper:
    """Send ``request``, return the server's answer; its ``Error`` raises :class:`RemoteError`."""
    where = f"{host}:{port}"
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=min(timeout, 30.0)) as sock:
            sock.settimeout(timeout)
            send_message(sock, request)
            total = parse_header(recv_exactly(sock, HEADER_BYTES, idle=timeout, deadline=deadline,
                                              what="answer's length header"))
            if not HEADER_BYTES <= total <= MAX_RESPONSE_BYTES:
                raise ProtocolError(f"the server at {where} announced an answer of {total:,} bytes")
            data = recv_exactly(sock, total - HEADER_BYTES, idle=timeout, deadline=deadline, what="answer")
    except socket.timeout:
        raise ServerUnavailableError(f"the ML server at {where} did not answer within {timeout:g} s") from None
    except ConnectionRefusedError:
        raise ServerUnavailableError(f"cannot connect to the ML server at {where} (connection refused): "
                                     "is `nodegraph serve` running there, on that port?") from None
    except OSError as exc:
        raise ServerUnavailableError(f"cannot talk to the ML server at {where}: {exc.strerror or exc}") from None
    try:
        answer = pb.RespondWrapper.FromString(data)
    except DecodeError:
        raise ProtocolError(f"the server at {where} answered with bytes that are no RespondWrapper") from None
    if answer.HasField("error"):
        raise RemoteError(f"the ML server at {where} says: {answer.error.msg}")
    return answer


def list_models(host: str, port: int, *, timeout: float = 60.0) -> list[pb.Model]:
    """The models a server offers (an info request)."""
    request = pb.RequestWrapper(info=True)
    request.r1.info = True
    answer = exchange(host, port, request, timeout=timeout)
    if not answer.HasField("r1"):
        raise ProtocolError(f"the server at {host}:{port} did not answer the info request with model info")
    return list(answer.r1.models)


_INFO: dict[tuple[str, int], tuple[float, list[pb.Model]]] = {}
_INFO_LOCK = threading.Lock()


def find_model(host: str, port: int, name: str, *, timeout: float = 60.0, fresh: bool = False) -> pb.Model:
    """The server's description of model ``name`` (answers reused for :data:`INFO_TTL` seconds)."""
    key = (host, int(port))
    with _INFO_LOCK:
        cached = _INFO.get(key)
    if fresh or cached is None or time.monotonic() - cached[0] > INFO_TTL:
        cached = (time.monotonic(), list_models(host, port, timeout=timeout))
        with _INFO_LOCK:
            _INFO[key] = cached
    for model in cached[1]:
        if model.name == name:
            return model
    names = ", ".join(m.name for m in cached[1][:50]) or "none"
    raise RemoteError(f"the ML server at {host}:{port} has no model named {name!r}; it serves: {names}")


def request_model(model: pb.Model, values: dict[str, Any], token: str = "") -> pb.Model:
    """The ``Model`` of an inference request: ``model``'s name with ``values`` (knob name -> value)
    set on the option of that name, of the kind the server listed; the others at the server's
    defaults. An unknown name raises ``KeyError``, a value of the wrong kind ``ValueError``."""
    m = pb.Model(name=model.name, label=model.label)
    kinds = {}
    for kind in ("bool_options", "int_options", "float_options", "string_options", "mc_options",
                 "button_options"):
        for option in getattr(model, kind):
            kinds.setdefault(option.name, kind)
    unknown = [k for k in values if k not in kinds or k == TOKEN_OPTION]
    if unknown:
        raise KeyError(unknown[0])
    for kind in ("bool_options", "int_options", "float_options", "string_options", "mc_options"):
        for option in getattr(model, kind):
            if option.name == TOKEN_OPTION and kind == "string_options":
                continue
            given = option.name in values
            value = values[option.name] if given else None
            if kind == "mc_options":
                choices = list(option.choices)
                if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(choices):
                    value = choices[value]  # an index, as Nuke's enumeration knobs store them
                m.mc_options.add(name=option.name, value=str(value) if given else option.value, choices=choices)
            elif kind == "string_options" and option.name in [o.name for o in model.mc_options]:
                continue  # an enum: sent as its multiple-choice option
            elif not given:
                getattr(m, kind).add(name=option.name, values=list(option.values))
            else:
                getattr(m, kind).add(name=option.name, values=_values(kind, option.name, value))
    if token:
        m.string_options.add(name=TOKEN_OPTION, values=[token])
    return m


def _values(kind: str, name: str, value: Any) -> list[Any]:
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    ok = {"bool_options": lambda v: isinstance(v, bool),
          "int_options": lambda v: isinstance(v, int) and not isinstance(v, bool),
          "float_options": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          "string_options": lambda v: isinstance(v, str)}[kind]
    if not items or not all(ok(v) for v in items):
        raise ValueError(f"{value!r} is not a {kind.removesuffix('_options')} value for option {name!r}")
    return items


def infer(host: str, port: int, model: pb.Model, pixels: torch.Tensor, *, timeout: float = 600.0) -> torch.Tensor:
    """Run ``model`` (a request ``Model``, see :func:`request_model`) on ``pixels`` ``[C, H, W]``;
    returns the first image of the answer as ``[C', H', W']`` float32 on the CPU."""
    request = pb.RequestWrapper(info=True)
    request.r2.model.CopyFrom(model)
    fill_image(request.r2.images.add(), pixels)
    answer = exchange(host, port, request, timeout=timeout)
    if not answer.HasField("r2") or not answer.r2.images:
        raise ProtocolError(f"the server at {host}:{port} answered the inference request without an image")
    return image_to_tensor(answer.r2.images[0], what="the server's image")


__all__ = ["INFO_TTL", "MAX_RESPONSE_BYTES", "exchange", "find_model", "infer", "list_models", "request_model"]
