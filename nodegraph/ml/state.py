"""The ``.ost`` resume file: everything needed to continue a CopyCat training run.

One safetensors file, written atomically. Tensors (weights, optimizer moments, RNG states) are
stored as safetensors tensors; the structure around them (optimizer param groups, step, data set
description, settings) is JSON in the safetensors header metadata under ``nodegraph.ost``.
Nothing is pickled, so a resume file from an untrusted place cannot run code.

Nested structures (``optimizer.state_dict()``) are flattened by :func:`pack`: every tensor is
replaced by ``{"__tensor__": key}``, tuples by ``{"__tuple__": [...]}`` and dicts whose keys are
not all strings by ``{"__items__": [[key, value], ...]}``; :func:`unpack` reverses it exactly.

The header also holds ``tensors_sha256``, a SHA-256 over every tensor's name, dtype, shape and
bytes (:func:`tensors_digest`), verified on load: a flipped bit in the weights or the optimizer
moments is an error naming the file, never a run that trains on into NaN. Every way a file can
be damaged or edited (not safetensors, truncated, a header that is not ours, a reference to a
missing tensor, a structure that is not what :func:`pack` writes) raises :class:`StateFileError`
naming the file; :func:`check_training_state` checks the keys and types CopyCat's resume needs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import torch

from nodegraph.errors import NodeGraphError

#: Version of the layout in the JSON header; bumped on incompatible changes.
#: 2: ``tensors_sha256`` added (version 1 files had no checksum and are refused).
STATE_VERSION = 2
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
    """Inverse of :func:`pack` (``KeyError`` for a missing tensor, ``TypeError``/``ValueError`` for
    a structure :func:`pack` does not write)."""
    if isinstance(value, list):
        return [unpack(v, tensors) for v in value]
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__tuple__" in value:
            return tuple(unpack(v, tensors) for v in value["__tuple__"])
        if "__items__" in value:
            out = {}
            for item in value["__items__"]:
                k, v = item
                out[tuple(k) if isinstance(k, list) else k] = unpack(v, tensors)
            return out
        return {k: unpack(v, tensors) for k, v in value.items()}
    return value


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors' names, dtypes, shapes and bytes (in name order)."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().to("cpu").contiguous()
        h.update(f"{key}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def save_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write ``state`` (nested dicts/lists of JSON values and tensors) atomically to ``path``."""
    from safetensors.torch import save

    from nodegraph.atomic import atomic_write_bytes

    tensors: dict[str, torch.Tensor] = {}
    structure = pack(state, tensors, "t")
    header = json.dumps({"version": STATE_VERSION, "tensors_sha256": tensors_digest(tensors),
                         "state": structure}, allow_nan=True)
    # bytes, then the one atomic writer (safetensors' own save_file creates files mode 0600)
    atomic_write_bytes(path, save(tensors, metadata={_META_KEY: header}), error=StateFileError)


def load_state(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a ``.ost`` file written by :func:`save_state`; tensors land on ``device``."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        if not path.is_file():
            raise StateFileError("resume file does not exist" if not path.exists() else
                                 "the resume file is not a regular file", path=str(path))
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError, OverflowError) as err:
        raise StateFileError(f"not a readable resume file: {str(err)[:300]}", path=str(path)) from None
    if _META_KEY not in meta:
        raise StateFileError("not a nodegraph resume file (no 'nodegraph.ost' header)", path=str(path))
    try:
        header = json.loads(meta[_META_KEY])
    except (ValueError, RecursionError) as err:
        raise StateFileError(f"corrupt resume header: {err}", path=str(path)) from None
    if not isinstance(header, dict):
        raise StateFileError("corrupt resume header: not a JSON object", path=str(path))
    if header.get("version") != STATE_VERSION:
        raise StateFileError(f"resume file version {repr(header.get('version'))[:40]} is not supported "
                             f"(this nodegraph reads version {STATE_VERSION}); train without --resume to "
                             "start again", path=str(path))
    if tensors_digest(tensors) != header.get("tensors_sha256"):
        raise StateFileError("tensor checksum mismatch (key 'tensors_sha256'): the resume file was modified or "
                             "corrupted; train without --resume, or from an earlier checkpoint with "
                             "initialWeights 'checkpoint'", path=str(path))
    if "state" not in header:
        raise StateFileError("corrupt resume header: no key 'state'", path=str(path))
    try:
        state = unpack(header["state"], tensors)
    except KeyError as err:
        raise StateFileError(f"resume file refers to a missing tensor {err}", path=str(path)) from None
    except (TypeError, ValueError, RecursionError) as err:
        raise StateFileError(f"corrupt resume header structure: {err}", path=str(path)) from None
    if str(torch.device(device)) != "cpu":
        state = _to_device(state, torch.device(device))
    return state


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value


#: What CopyCat's resume needs: key -> (accepted types, description).
_TRAINING_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "node": ((str,), "a string"),
    "model_id": ((str,), "a string"),
    "step": ((int,), "an integer >= 0"),
    "total_steps": ((int,), "an integer >= 1"),
    "batch_size": ((int,), "an integer >= 1"),
    "crop_size": ((int,), "an integer >= 1"),
    "learning_rate": ((int, float), "a finite number > 0"),
    "schedule": ((str,), "cosine, step or constant"),
    "elapsed_s": ((int, float), "a finite number >= 0"),
    "config": ((dict,), "an object"),
    "dataset": ((dict,), "an object"),
    "model": ((dict,), "an object of tensors"),
    "optimizer": ((dict,), "an object"),
    "rng": ((dict,), "an object"),
}


def check_training_state(state: Any, path: str | os.PathLike[str]) -> dict[str, Any]:
    """``state`` if it has every key of a CopyCat resume file with a usable type and value, else
    :class:`StateFileError` naming the file and the key."""
    path = str(path)
    if not isinstance(state, dict):
        raise StateFileError("the resume state is not an object", path=path)

    def bad(key: str, what: str) -> StateFileError:
        return StateFileError(f"key {key!r} must be {what}, not {str(state.get(key))[:60]!r}", path=path)

    for key, (types, what) in _TRAINING_KEYS.items():
        if key not in state:
            raise StateFileError(f"the resume file lacks key {key!r}", path=path)
        value = state[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise bad(key, what)
    ints = {"step": 0, "total_steps": 1, "batch_size": 1, "crop_size": 1}
    for key, low in ints.items():
        if state[key] < low:
            raise bad(key, _TRAINING_KEYS[key][1])
    for key, positive in (("learning_rate", True), ("elapsed_s", False)):
        v = state[key]
        if not math.isfinite(v) or (v <= 0 if positive else v < 0):
            raise bad(key, _TRAINING_KEYS[key][1])
    if state["schedule"] not in ("cosine", "step", "constant"):
        raise bad("schedule", _TRAINING_KEYS["schedule"][1])
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state["model"].items()):
        raise bad("model", "an object of tensors")
    opt = state["optimizer"]
    if not isinstance(opt.get("state"), dict) or not isinstance(opt.get("param_groups"), list):
        raise StateFileError("key 'optimizer' must hold 'state' and 'param_groups'", path=path)
    rng = state["rng"]
    for key in ("torch", "sampler"):
        if not isinstance(rng.get(key), torch.Tensor):
            raise StateFileError(f"key 'rng.{key}' must be a tensor", path=path)
    dataset = state["dataset"]
    for key, kind in (("frames", list), ("channels_in", list), ("channels_out", list), ("width", int),
                      ("height", int)):
        if not isinstance(dataset.get(key), kind):
            raise StateFileError(f"key 'dataset.{key}' is missing or of the wrong type", path=path)
    return state


__all__ = ["STATE_VERSION", "StateFileError", "check_training_state", "load_state", "pack", "save_state",
           "tensors_digest", "unpack"]
