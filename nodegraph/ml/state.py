"""The ``.ost`` resume file: everything needed to continue a CopyCat training run.

One safetensors file, written atomically. Tensors (weights, optimizer moments, RNG states) are
stored as safetensors tensors; the structure around them (optimizer param groups, step, data set
description, settings) is JSON in the safetensors header metadata under ``nodegraph.ost``.
Nothing is pickled, so a resume file from an untrusted place cannot run code.

Nested structures (``optimizer.state_dict()``) are flattened by :func:`pack`: every tensor is
replaced by ``{"__tensor__": key}``, tuples by ``{"__tuple__": [...]}`` and dicts whose keys are
not all strings by ``{"__items__": [[key, value], ...]}``; :func:`unpack` reverses it exactly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from nodegraph.errors import NodeGraphError

#: Version of the layout in the JSON header; bumped on incompatible changes.
STATE_VERSION = 1
_META_KEY = "nodegraph.ost"


class StateFileError(NodeGraphError):
    """A ``.ost`` resume file is missing, corrupt or of an unknown version."""


def pack(value: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """JSON-able form of ``value``; tensors go into ``tensors`` under keys starting with ``prefix``."""
    if isinstance(value, torch.Tensor):
        key = f"{prefix}#{len(tensors)}"
        tensors[key] = value.detach().to("cpu").contiguous().clone()
        return {"__tensor__": key}
    if isinstance(value, tuple):
        return {"__tuple__": [pack(v, tensors, prefix) for v in value]}
    if isinstance(value, list):
        return [pack(v, tensors, prefix) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: pack(v, tensors, prefix) for k, v in value.items()}
        return {"__items__": [[k, pack(v, tensors, prefix)] for k, v in value.items()]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise StateFileError(f"cannot store a {type(value).__name__} in a resume file")


def unpack(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`pack`."""
    if isinstance(value, list):
        return [unpack(v, tensors) for v in value]
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__tuple__" in value:
            return tuple(unpack(v, tensors) for v in value["__tuple__"])
        if "__items__" in value:
            return {(tuple(k) if isinstance(k, list) else k): unpack(v, tensors) for k, v in value["__items__"]}
        return {k: unpack(v, tensors) for k, v in value.items()}
    return value


def save_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write ``state`` (nested dicts/lists of JSON values and tensors) atomically to ``path``."""
    from safetensors.torch import save_file

    from nodegraph.io.atomic import atomic_output

    tensors: dict[str, torch.Tensor] = {}
    structure = pack(state, tensors, "t")
    header = json.dumps({"version": STATE_VERSION, "state": structure}, allow_nan=True)
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata={_META_KEY: header})


def load_state(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a ``.ost`` file written by :func:`save_state`; tensors land on ``device``."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise StateFileError("resume file does not exist", path=str(path))
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise StateFileError(f"not a readable resume file: {err}", path=str(path)) from None
    if _META_KEY not in meta:
        raise StateFileError("not a nodegraph resume file (no 'nodegraph.ost' header)", path=str(path))
    try:
        header = json.loads(meta[_META_KEY])
    except json.JSONDecodeError as err:
        raise StateFileError(f"corrupt resume header: {err}", path=str(path)) from None
    if header.get("version") != STATE_VERSION:
        raise StateFileError(f"resume file version {header.get('version')!r} is not supported "
                             f"(this nodegraph reads version {STATE_VERSION})", path=str(path))
    try:
        return unpack(header["state"], tensors)
    except KeyError as err:
        raise StateFileError(f"resume file refers to a missing tensor {err}", path=str(path)) from None


__all__ = ["STATE_VERSION", "StateFileError", "load_state", "pack", "save_state", "unpack"]
