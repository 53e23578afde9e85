"""The ``.cat`` model file that CopyCat writes and the Inference node loads.

A zip archive with exactly two entries:

- ``model.json``: ``format`` ("nodegraph.cat"), ``format_version`` (1), ``model_id``, ``kind``
  ("nodegraph-network"), ``channels_in`` / ``channels_out`` (Nuke channel names, one per network
  input/output channel, in order), ``output_scale`` (1: output size = input size),
  ``knobs`` (custom knobs the model exposes; empty for now), ``network`` (the
  :class:`~nodegraph.ml.network.NetworkConfig` as a dict), ``transfer`` (the name of the curve
  from :mod:`nodegraph.ml.transfer` that inputs are encoded and outputs decoded with),
  ``training`` (a free summary dict: steps, loss, data set...), ``weights_sha256`` (of the
  ``weights.safetensors`` entry's bytes), ``parameters``, ``created_by``, ``created``;
- ``weights.safetensors``: the state dict (safetensors: tensors and a JSON header, nothing is
  ever unpickled).

Files are written atomically (a temp file in the same folder, then ``os.replace``). Reading
checks everything and raises :class:`ModelFileError` naming the file: not a zip (e.g. a Nuke
CatFileCreator .cat, which is Nuke's own format), a zip that is not ours (a TorchScript ``.pt``
for instance), truncated or corrupt data, a weights checksum mismatch, a newer format version.
Note that Nuke's own ``.cat`` files and ours share the extension only.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from nodegraph.errors import NodeGraphError
from nodegraph.ml import transfer as _transfer
from nodegraph.ml.network import NetworkConfig, build_network, count_parameters

FORMAT = "nodegraph.cat"
FORMAT_VERSION = 1
KIND = "nodegraph-network"
META_ENTRY = "model.json"
WEIGHTS_ENTRY = "weights.safetensors"


class ModelFileError(NodeGraphError):
    """A model file could not be read or written; the message names the file and the reason."""


@dataclass
class LoadedModel:
    """A model read from a ``.cat`` file: the network (eval mode), its config and ``model.json``."""

    module: nn.Module
    config: NetworkConfig
    meta: dict[str, Any]

    @property
    def channels_in(self) -> list[str]:
        return list(self.meta["channels_in"])

    @property
    def channels_out(self) -> list[str]:
        return list(self.meta["channels_out"])

    @property
    def transfer(self) -> str:
        return str(self.meta["transfer"])


def _state_dict_bytes(module: nn.Module) -> bytes:
    from safetensors.torch import save

    module = getattr(module, "_orig_mod", module)  # torch.compile wrapper
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
    return save(tensors)


def save_cat(path: str | os.PathLike, module: nn.Module, *, config: NetworkConfig,
             channels_in: Iterable[str], channels_out: Iterable[str], model_id: str,
             training: dict[str, Any] | None = None, knobs: Iterable[Any] = (),
             transfer: str = _transfer.NAME) -> Path:
    """Write ``module`` (built from ``config``) as a ``.cat`` file at ``path``, atomically."""
    import nodegraph

    path = Path(path)
    channels_in, channels_out = [str(c) for c in channels_in], [str(c) for c in channels_out]
    if len(channels_in) != config.in_channels or len(channels_out) != config.out_channels:
        raise ModelFileError(
            f"channel names ({len(channels_in)} in, {len(channels_out)} out) do not match the network "
            f"({config.in_channels} in, {config.out_channels} out)", path=str(path))
    if not model_id:
        raise ModelFileError("model_id must not be empty", path=str(path))
    _transfer.get(transfer)
    weights = _state_dict_bytes(module)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_id": str(model_id),
        "kind": KIND,
        "channels_in": channels_in,
        "channels_out": channels_out,
        "output_scale": 1,
        "knobs": list(knobs),
        "network": config.to_dict(),
        "transfer": transfer,
        "training": dict(training or {}),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "parameters": count_parameters(module),
        "created_by": f"nodegraph {nodegraph.__version__}",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        meta_bytes = json.dumps(meta, indent=2, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"model metadata is not JSON-serialisable: {exc}", path=str(path)) from exc

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w") as zf:
                zf.writestr(zipfile.ZipInfo(META_ENTRY, (1980, 1, 1, 0, 0, 0)), meta_bytes,
                            compress_type=zipfile.ZIP_DEFLATED)
                zf.writestr(zipfile.ZipInfo(WEIGHTS_ENTRY, (1980, 1, 1, 0, 0, 0)), weights,
                            compress_type=zipfile.ZIP_STORED)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise ModelFileError(f"cannot write model file: {exc}", path=str(path)) from exc
        raise
    return path


def _not_a_zip_message(path: Path, head: bytes) -> str:
    if head.startswith(b"PK"):
        return "the model file is truncated or corrupt (a damaged zip archive)"
    if not head:
        return "the model file is empty"
    if path.suffix.lower() == ".cat":
        return ("this is not a nodegraph model file (not a zip archive); it looks like a Nuke "
                "CatFileCreator/CopyCat model in Nuke's proprietary .cat format, which nodegraph "
                "cannot read: load the TorchScript .pt it was made from instead, or retrain with "
                "nodegraph's CopyCat")
    return "this is not a nodegraph model file (not a zip archive)"


def _open(path: Path) -> tuple[zipfile.ZipFile, dict[str, Any]]:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except FileNotFoundError:
        raise ModelFileError("model file does not exist", path=str(path)) from None
    except OSError as exc:
        raise ModelFileError(f"cannot read model file: {exc}", path=str(path)) from exc
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise ModelFileError(_not_a_zip_message(path, head), path=str(path)) from None
    try:
        names = set(zf.namelist())
        if META_ENTRY not in names:
            if any(n.endswith(("data.pkl", "constants.pkl")) for n in names):
                what = "a PyTorch/TorchScript archive (pickled)"
            else:
                what = "a zip archive without model.json"
            raise ModelFileError(f"this is not a nodegraph model file: it is {what}; nodegraph "
                                 "model files are written by CopyCat", path=str(path))
        try:
            meta = json.loads(zf.read(META_ENTRY).decode("utf-8"))
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, UnicodeDecodeError) as exc:
            raise ModelFileError(f"model.json is unreadable (corrupt file?): {exc}", path=str(path)) from None
        _check_meta(meta, path)
        if WEIGHTS_ENTRY not in names:
            raise ModelFileError("the model file has no weights.safetensors entry", path=str(path))
    except BaseException:
        zf.close()
        raise
    return zf, meta


def _check_meta(meta: Any, path: Path) -> None:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"this is not a nodegraph model file: model.json does not declare "
                             f"format {FORMAT!r}", path=str(path))
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelFileError(f"model.json has no valid format_version ({version!r})", path=str(path))
    if version > FORMAT_VERSION:
        raise ModelFileError(f"the model file has format version {version}, newer than this nodegraph "
                             f"reads ({FORMAT_VERSION}); upgrade nodegraph to load it", path=str(path))
    if meta.get("kind") != KIND:
        raise ModelFileError(f"unsupported model kind {meta.get('kind')!r} (expected {KIND!r})",
                             path=str(path))
    required = ("model_id", "channels_in", "channels_out", "network", "transfer", "weights_sha256")
    missing = [k for k in required if k not in meta]
    if missing:
        raise ModelFileError(f"model.json lacks {', '.join(missing)}", path=str(path))


def read_cat_info(path: str | os.PathLike) -> dict[str, Any]:
    """``model.json`` of a model file, checked (format, version, required keys); weights not read."""
    path = Path(path)
    zf, meta = _open(path)
    zf.close()
    return meta


def load_cat(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> LoadedModel:
    """Read a model file: check its format and weights checksum, build the network, load it."""
    from safetensors.torch import load

    path = Path(path)
    zf, meta = _open(path)
    with zf:
        try:
            weights = zf.read(WEIGHTS_ENTRY)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise ModelFileError(f"the weights are unreadable (truncated or corrupt file): {exc}",
                                 path=str(path)) from None
    if hashlib.sha256(weights).hexdigest() != meta["weights_sha256"]:
        raise ModelFileError("weights checksum mismatch: the file was modified or corrupted",
                             path=str(path))
    try:
        config = NetworkConfig.from_dict(meta["network"])
        _transfer.get(meta["transfer"])
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"invalid network description in model.json: {exc}", path=str(path)) from None
    if len(meta["channels_in"]) != config.in_channels or len(meta["channels_out"]) != config.out_channels:
        raise ModelFileError("channel lists in model.json do not match the network", path=str(path))
    try:
        state = load(weights)
    except Exception as exc:  # safetensors raises its own error type
        raise ModelFileError(f"the weights are unreadable: {exc}", path=str(path)) from None
    module = build_network(config)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"the weights do not fit the network: {exc}", path=str(path)) from None
    module.to(device).eval()
    return LoadedModel(module=module, config=config, meta=meta)


__all__ = ["FORMAT", "FORMAT_VERSION", "KIND", "ModelFileError", "LoadedModel", "save_cat",
           "load_cat", "read_cat_info"]
