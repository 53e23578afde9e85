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

A second kind, ``kind: "torchscript"``, packages a TorchScript module the user made (for
instance one made for Nuke's Inference node, such as CorridorKey): the ``weights.safetensors``
entry is replaced by ``model.torchscript`` (the TorchScript archive's bytes, exactly as
``torch.jit.save`` wrote them) and ``network`` / ``weights_sha256`` by ``module_sha256``;
``transfer`` is ``"none"`` (the module takes and returns pixel values as they are). Such files
are written by :func:`nodegraph.ml.torchscript.create_cat_from_torchscript` (``nodegraph cat
create``). ``knobs`` is a list of ``{"name", "type", "default", ...}`` dicts, see
:func:`check_knobs`.

Files are written atomically by :mod:`nodegraph.atomic` (umask honoured). Reading checks
everything and raises :class:`ModelFileError` naming the file: not a zip (e.g. a Nuke
CatFileCreator .cat, which is Nuke's own format), a zip that is not ours (a TorchScript ``.pt``
for instance), entries other than the two above, truncated or corrupt data, a weights checksum
mismatch, a newer format version. Note that Nuke's own ``.cat`` files and ours share the
extension only.

A model file may come from anywhere, so every size it declares is bounded before anything is
allocated, and the error names the limit (:class:`ModelLimitError`): ``model.json`` at most
``MAX_META_BYTES``; every entry's declared size against its compressed size
(``MAX_COMPRESSION_RATIO``); entries read with a cap, never trusting the zip headers; a nodegraph
network's config within :mod:`nodegraph.ml.network`'s bounds (``MAX_SCALES``, ``MAX_WIDTH``, ...)
and ``MAX_PARAMETERS``, its weights entry no larger than those parameters need, its tensors
exactly the network's; a TorchScript entry at most ``max_torchscript_bytes()``
(``NODEGRAPH_MAX_MODEL_BYTES``); channel lists, knobs and ``output_scale`` bounded too.

A ``kind: "torchscript"`` model runs code when loaded: :func:`load_cat` loads one only when
:mod:`nodegraph.ml.trust` allows it (an explicit opt-in), else raises :class:`UntrustedModelError`
before ``torch.jit.load`` is called.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from nodegraph.atomic import atomic_output
from nodegraph.errors import NodeGraphError
from nodegraph.io.guard import os_reason
from nodegraph.ml import transfer as _transfer
from nodegraph.ml import trust as _trust
from nodegraph.ml.network import NetworkConfig, build_network, count_parameters

FORMAT = "nodegraph.cat"
FORMAT_VERSION = 1
KIND = "nodegraph-network"
KIND_TORCHSCRIPT = "torchscript"
KINDS = (KIND, KIND_TORCHSCRIPT)
META_ENTRY = "model.json"
WEIGHTS_ENTRY = "weights.safetensors"
TORCHSCRIPT_ENTRY = "model.torchscript"
#: The entry holding the module, per kind.
MODULE_ENTRY = {KIND: WEIGHTS_ENTRY, KIND_TORCHSCRIPT: TORCHSCRIPT_ENTRY}
#: The model.json key holding that entry's sha256, per kind.
CHECKSUM_KEY = {KIND: "weights_sha256", KIND_TORCHSCRIPT: "module_sha256"}
KNOB_TYPES = ("int", "float", "bool", "enum", "xy", "xyz")

#: Limits on what a model file may declare (checked before allocating; errors name the limit).
MAX_META_BYTES = 1 << 20
MAX_COMPRESSION_RATIO = 100
MAX_PARAMETERS = 250_000_000
MAX_CHANNELS = 1024
MAX_KNOBS = 256
MAX_OUTPUT_SCALE = 16
#: Default of ``max_torchscript_bytes()``; ``NODEGRAPH_MAX_MODEL_BYTES`` overrides it.
DEFAULT_MAX_TORCHSCRIPT_BYTES = 8 << 30
ENV_MAX_MODEL_BYTES = "NODEGRAPH_MAX_MODEL_BYTES"
_READ_CHUNK = 1 << 20


class ModelFileError(NodeGraphError):
    """A model file could not be read or written; the message names the file and the reason."""


class ModelLimitError(ModelFileError):
    """A model file declares more than a limit allows (the message names the limit)."""


class UntrustedModelError(ModelFileError):
    """A TorchScript model was to be loaded without an opt-in (the message says how to opt in)."""


def max_torchscript_bytes() -> int:
    """Largest ``model.torchscript`` entry read: ``NODEGRAPH_MAX_MODEL_BYTES`` or 8 GiB."""
    text = os.environ.get(ENV_MAX_MODEL_BYTES, "").strip()
    try:
        return max(1, int(text)) if text else DEFAULT_MAX_TORCHSCRIPT_BYTES
    except ValueError:
        return DEFAULT_MAX_TORCHSCRIPT_BYTES


@dataclass
class LoadedModel:
    """A model read from a ``.cat`` file: the module (eval mode), its config and ``model.json``.

    ``module`` maps ``[N, Cin, H, W]`` float tensors to ``[N, Cout, H*s, W*s]`` (``s`` =
    ``output_scale``). For ``kind == "nodegraph-network"`` it works in the encoded domain: encode
    inputs and decode outputs with ``transfer`` (:func:`nodegraph.ml.transfer.get`); ``config`` is
    its :class:`NetworkConfig`. For ``kind == "torchscript"`` it is a ``torch.jit.ScriptModule``
    taking pixel values as they are (``transfer == "none"``), ``config`` is None, and custom knob
    values are set as attributes on it before a forward (see :func:`knob_attribute_value`).
    """

    module: nn.Module
    config: NetworkConfig | None
    meta: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.meta["kind"])

    @property
    def output_scale(self) -> int:
        return int(self.meta.get("output_scale", 1))

    @property
    def knobs(self) -> list[dict[str, Any]]:
        return [dict(k) for k in self.meta.get("knobs", [])]

    @property
    def channels_in(self) -> list[str]:
        return list(self.meta["channels_in"])

    @property
    def channels_out(self) -> list[str]:
        return list(self.meta["channels_out"])

    @property
    def transfer(self) -> str:
        """``"slog1p"`` for nodegraph networks, ``"none"`` for TorchScript modules."""
        if self.kind == KIND_TORCHSCRIPT:
            return "none"
        return str(self.meta["transfer"])


def _number(value: Any, integer: bool, what: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, not {value!r}")
    if integer:
        if float(value) != int(value):
            raise ValueError(f"{what} must be an integer, not {value!r}")
        return int(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{what} must be finite")
    return float(value)


def check_knob(knob: Any) -> dict[str, Any]:
    """One custom knob description, checked and normalised (raises ``ValueError``).

    ``{"name", "type", "default"}`` plus ``"min"`` / ``"max"`` (a number or None for no bound)
    for ``int``, ``float``, ``xy``, ``xyz`` and ``"choices"`` (strings) for ``enum``. Defaults:
    int -> int, float -> float, bool -> bool, enum -> one of the choices (a string), xy / xyz ->
    a list of 2 / 3 floats.
    """
    if not isinstance(knob, dict):
        raise ValueError(f"a knob must be a dict, not {knob!r}")
    name, kind = knob.get("name"), knob.get("type")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"knob name {name!r} is not a valid attribute name")
    if kind not in KNOB_TYPES:
        raise ValueError(f"knob {name!r}: type {kind!r} is not one of {', '.join(KNOB_TYPES)}")
    default = knob.get("default")
    out: dict[str, Any] = {"name": name, "type": kind}
    if kind == "bool":
        if not isinstance(default, bool):
            raise ValueError(f"knob {name!r}: default must be true or false, not {default!r}")
        out["default"] = default
    elif kind == "enum":
        choices = knob.get("choices")
        if (not isinstance(choices, list) or not choices or not all(isinstance(c, str) and c for c in choices)
                or len(set(choices)) != len(choices)):
            raise ValueError(f"knob {name!r}: choices must be a non-empty list of distinct names")
        default = choices[0] if default is None else default
        if default not in choices:
            raise ValueError(f"knob {name!r}: default {default!r} is not one of the choices {choices}")
        out.update(default=default, choices=list(choices))
    else:
        integer = kind == "int"
        size = {"xy": 2, "xyz": 3}.get(kind)
        if size is None:
            out["default"] = _number(default, integer, f"knob {name!r} default")
            values = [out["default"]]
        else:
            if not isinstance(default, (list, tuple)) or len(default) != size:
                raise ValueError(f"knob {name!r}: default must be {size} numbers, not {default!r}")
            out["default"] = [_number(v, False, f"knob {name!r} default") for v in default]
            values = out["default"]
        for bound in ("min", "max"):
            value = knob.get(bound)
            out[bound] = None if value is None else _number(value, integer, f"knob {name!r} {bound}")
        if out["min"] is not None and out["max"] is not None and out["min"] > out["max"]:
            raise ValueError(f"knob {name!r}: min {out['min']} is above max {out['max']}")
        for v in values:
            if (out["min"] is not None and v < out["min"]) or (out["max"] is not None and v > out["max"]):
                raise ValueError(f"knob {name!r}: default {v} is outside {out['min']}..{out['max']}")
    return out


def check_knobs(knobs: Iterable[Any]) -> list[dict[str, Any]]:
    """:func:`check_knob` over a list, also rejecting duplicate names."""
    out = [check_knob(k) for k in knobs]
    names = [k["name"] for k in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate knob name(s): {', '.join(dupes)}")
    return out


def knob_attribute_value(knob: dict[str, Any], value: Any) -> Any:
    """The value to set as the module attribute for a knob value (as Nuke's Inference does):
    int -> int, float -> float, bool -> bool, enum -> the choice's index (an int; a choice name
    or an index is accepted), xy / xyz -> a list of floats."""
    kind = knob["type"]
    if kind == "enum":
        choices = knob["choices"]
        if isinstance(value, str):
            if value not in choices:
                raise ValueError(f"knob {knob['name']!r}: {value!r} is not one of {choices}")
            return choices.index(value)
        index = int(value)
        if not 0 <= index < len(choices):
            raise ValueError(f"knob {knob['name']!r}: index {index} outside 0..{len(choices) - 1}")
        return index
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    return [float(v) for v in value]


def write_cat(path: str | os.PathLike, meta: dict[str, Any], module_bytes: bytes) -> Path:
    """Write ``model.json`` and the kind's module entry atomically (checksum filled in here)."""
    path = Path(path)
    kind = meta["kind"]
    meta = {**meta, CHECKSUM_KEY[kind]: hashlib.sha256(module_bytes).hexdigest()}
    try:
        meta_bytes = json.dumps(meta, indent=2, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"model metadata is not JSON-serialisable: {exc}", path=str(path)) from exc

    with atomic_output(path, create_directories=True, error=ModelFileError) as tmp:
        with open(tmp, "xb") as fh, zipfile.ZipFile(fh, "w") as zf:
            zf.writestr(zipfile.ZipInfo(META_ENTRY, (1980, 1, 1, 0, 0, 0)), meta_bytes,
                        compress_type=zipfile.ZIP_DEFLATED)
            zf.writestr(zipfile.ZipInfo(MODULE_ENTRY[kind], (1980, 1, 1, 0, 0, 0)), module_bytes,
                        compress_type=zipfile.ZIP_STORED)
    return path


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
    try:
        knobs = check_knobs(knobs)
    except ValueError as exc:
        raise ModelFileError(str(exc), path=str(path)) from None
    weights = _state_dict_bytes(module)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_id": str(model_id),
        "kind": KIND,
        "channels_in": channels_in,
        "channels_out": channels_out,
        "output_scale": 1,
        "knobs": knobs,
        "network": config.to_dict(),
        "transfer": transfer,
        "training": dict(training or {}),
        "weights_sha256": "",
        "parameters": count_parameters(module),
        "created_by": f"nodegraph {nodegraph.__version__}",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return write_cat(path, meta, weights)


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


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, limit: str, path: Path) -> bytes:
    """An entry's bytes, refusing declared sizes over ``cap`` or a suspicious compression ratio,
    and reading at most ``cap`` bytes whatever the headers say."""
    name = info.filename
    if info.file_size > cap:
        raise ModelLimitError(f"the {name} entry declares {info.file_size:,} bytes, more than the limit of "
                              f"{cap:,} ({limit})", path=str(path))
    if info.file_size > max(1, info.compress_size) * MAX_COMPRESSION_RATIO and info.file_size > 4096:
        raise ModelLimitError(f"the {name} entry expands {info.file_size:,} bytes from {info.compress_size:,} "
                              f"(a decompression bomb?), more than the ratio limit of {MAX_COMPRESSION_RATIO} "
                              f"(MAX_COMPRESSION_RATIO)", path=str(path))
    chunks, total = [], 0
    try:
        with zf.open(info) as fh:
            while True:
                chunk = fh.read(min(_READ_CHUNK, cap + 1 - total))
                if not chunk:
                    break
                total += len(chunk)
                if total > cap:
                    raise ModelLimitError(f"the {name} entry holds more than {cap:,} bytes ({limit})",
                                          path=str(path))
                chunks.append(chunk)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError,
            RuntimeError) as exc:
        what = {META_ENTRY: "model.json", TORCHSCRIPT_ENTRY: "module"}.get(name, "weights")
        raise ModelFileError(f"the {what} entry is unreadable (truncated or corrupt file): {exc}",
                             path=str(path)) from None
    return b"".join(chunks)


def _open(path: Path) -> tuple[zipfile.ZipFile, dict[str, Any]]:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except FileNotFoundError:
        raise ModelFileError("model file does not exist", path=str(path)) from None
    except OSError as exc:
        raise ModelFileError(os_reason(str(path), exc), path=str(path)) from None
    except ValueError:  # a NUL byte in the path
        raise ModelFileError("the model file's path is not valid (it contains a NUL byte)", path=str(path)) from None
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        raise ModelFileError(_not_a_zip_message(path, head), path=str(path)) from None
    try:
        names = [i.filename for i in zf.infolist()]
        if META_ENTRY not in names:
            if any(n.endswith(("data.pkl", "constants.pkl")) for n in names):
                what = "a PyTorch/TorchScript archive (pickled)"
            else:
                what = "a zip archive without model.json"
            hint = (" (package a TorchScript module with `nodegraph cat create --torchscript FILE ...`)"
                    if "TorchScript" in what else "")
            raise ModelFileError(f"this is not a nodegraph model file: it is {what}; nodegraph "
                                 f"model files are written by CopyCat and `nodegraph cat create`{hint}",
                                 path=str(path))
        extra = sorted(set(names) - {META_ENTRY, WEIGHTS_ENTRY, TORCHSCRIPT_ENTRY})
        if extra or len(names) > 2 or len(set(names)) != len(names):
            shown = ", ".join(repr(n[:80]) for n in extra[:5]) + (", ..." if len(extra) > 5 else "")
            raise ModelFileError(f"a model file holds exactly two entries (model.json and the module), this one "
                                 f"has {len(names)}" + (f": unexpected {shown}" if extra else ""), path=str(path))
        raw = _read_entry(zf, zf.getinfo(META_ENTRY), MAX_META_BYTES, "MAX_META_BYTES", path)
        try:
            meta = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ModelFileError(f"model.json is unreadable (corrupt file?): {exc}", path=str(path)) from None
        _check_meta(meta, path)
        entry = MODULE_ENTRY[meta["kind"]]
        if entry not in names:
            raise ModelFileError(f"the model file has no {entry} entry", path=str(path))
        if len(names) != 2:
            raise ModelFileError(f"a model file holds exactly two entries (model.json and the module), this "
                                 f"one has {len(names)}", path=str(path))
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
    kind = meta.get("kind")
    if kind not in KINDS:
        raise ModelFileError(f"unsupported model kind {str(kind)[:80]!r} (expected one of {', '.join(KINDS)})",
                             path=str(path))
    required = ("model_id", "channels_in", "channels_out", CHECKSUM_KEY[kind])
    if kind == KIND:
        required += ("network", "transfer")
    missing = [k for k in required if k not in meta]
    if missing:
        raise ModelFileError(f"model.json lacks {', '.join(missing)}", path=str(path))
    if not isinstance(meta["model_id"], str) or not isinstance(meta[CHECKSUM_KEY[kind]], str):
        raise ModelFileError(f"model.json: model_id and {CHECKSUM_KEY[kind]} must be strings", path=str(path))
    for key in ("channels_in", "channels_out"):
        value = meta[key]
        if not isinstance(value, list) or not value or not all(isinstance(c, str) and c for c in value):
            raise ModelFileError(f"model.json: {key} must be a non-empty list of channel names", path=str(path))
        if len(value) > MAX_CHANNELS:
            raise ModelLimitError(f"model.json: {key} lists {len(value):,} channels, more than the limit of "
                                  f"{MAX_CHANNELS} (MAX_CHANNELS)", path=str(path))
    scale = meta.get("output_scale", 1)
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ModelFileError(f"model.json has an invalid output_scale {str(scale)[:40]!r}", path=str(path))
    if scale > MAX_OUTPUT_SCALE:
        raise ModelLimitError(f"model.json: output_scale {scale} is more than the limit of {MAX_OUTPUT_SCALE} "
                              "(MAX_OUTPUT_SCALE)", path=str(path))
    knobs = meta.get("knobs", [])
    if isinstance(knobs, list) and len(knobs) > MAX_KNOBS:
        raise ModelLimitError(f"model.json declares {len(knobs):,} knobs, more than the limit of {MAX_KNOBS} "
                              "(MAX_KNOBS)", path=str(path))
    try:
        if not isinstance(knobs, list):
            raise ValueError("knobs must be a list")
        check_knobs(knobs)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ModelFileError(f"invalid knobs in model.json: {exc}", path=str(path)) from None
    if kind == KIND:
        _network_config(meta, path)


def _network_config(meta: dict[str, Any], path: Path) -> NetworkConfig:
    """The network of a nodegraph-network model.json, checked against the limits (nothing allocated)."""
    try:
        if not isinstance(meta["network"], dict):
            raise ValueError("network must be an object")
        config = NetworkConfig.from_dict(meta["network"])
        _transfer.get(meta["transfer"])
    except (TypeError, ValueError, OverflowError) as exc:
        limit = isinstance(exc, ValueError) and "(limit " in str(exc)
        raise (ModelLimitError if limit else ModelFileError)(
            f"invalid network description in model.json: {exc}", path=str(path)) from None
    except NodeGraphError as exc:
        raise ModelFileError(f"invalid transfer in model.json: {exc.message}", path=str(path)) from None
    if len(meta["channels_in"]) != config.in_channels or len(meta["channels_out"]) != config.out_channels:
        raise ModelFileError("channel lists in model.json do not match the network", path=str(path))
    return config


def expected_state(config: NetworkConfig) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors a network of ``config`` holds, computed without allocating."""
    with torch.device("meta"):
        net = build_network(config)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def check_trusted(path: Path) -> None:
    if not _trust.is_trusted(path):
        raise UntrustedModelError(f"this is a TorchScript model (kind 'torchscript'): loading it runs code "
                                  f"from the file, and nothing opted in. {_trust.how_to_opt_in()}",
                                  path=str(path))


def _load_torchscript(data: bytes, device: str | torch.device, path: Path) -> nn.Module:
    """``torch.jit.load`` on the archive bytes (TorchScript's own format: code plus tensors); only
    ever called on the ``model.torchscript`` entry of a ``kind: "torchscript"`` file after
    :mod:`nodegraph.ml.trust` allowed it."""
    import io

    try:
        module = torch.jit.load(io.BytesIO(data), map_location=torch.device(device))
    except Exception as exc:  # torch raises RuntimeError and friends
        raise ModelFileError(f"the TorchScript module cannot be loaded: {exc}", path=str(path)) from None
    return module.eval()


def read_cat_info(path: str | os.PathLike) -> dict[str, Any]:
    """``model.json`` of a model file, checked (format, version, required keys, limits); the
    module is not read."""
    path = Path(path)
    zf, meta = _open(path)
    zf.close()
    return meta


def load_cat(path: str | os.PathLike, *, device: str | torch.device = "cpu",
             kinds: Iterable[str] = KINDS) -> LoadedModel:
    """Read a model file of one of ``kinds``: check its format, limits and checksum, load the module
    on ``device`` in eval mode (see :class:`LoadedModel`). A TorchScript model needs the opt-in of
    :mod:`nodegraph.ml.trust` (else :class:`UntrustedModelError`, and nothing is loaded)."""
    from safetensors.torch import load

    path = Path(path)
    zf, meta = _open(path)
    kind = meta["kind"]
    with zf:
        if kind not in tuple(kinds):
            raise ModelFileError(f"this is a {kind!r} model; only {', '.join(kinds)} can be used here",
                                 path=str(path))
        info = zf.getinfo(MODULE_ENTRY[kind])
        if kind == KIND_TORCHSCRIPT:
            check_trusted(path)
            cap, limit = max_torchscript_bytes(), f"the TorchScript size limit, {ENV_MAX_MODEL_BYTES}"
        else:
            config = _network_config(meta, path)
            shapes = expected_state(config)
            params = sum(math.prod(s) for s in shapes.values())
            if params > MAX_PARAMETERS:
                raise ModelLimitError(f"the network described in model.json has {params:,} weights, more than "
                                      f"the limit of {MAX_PARAMETERS:,} (MAX_PARAMETERS)", path=str(path))
            # float32 at most, plus the safetensors header (names, dtypes, shapes, offsets)
            cap = 4 * params + 8 + 4096 + 256 * len(shapes)
            limit = "the size of the network described in model.json"
        weights = _read_entry(zf, info, cap, limit, path)
    if hashlib.sha256(weights).hexdigest() != meta[CHECKSUM_KEY[kind]]:
        what = "module" if kind == KIND_TORCHSCRIPT else "weights"
        raise ModelFileError(f"{what} checksum mismatch: the file was modified or corrupted",
                             path=str(path))
    if kind == KIND_TORCHSCRIPT:
        return LoadedModel(module=_load_torchscript(weights, device, path), config=None, meta=meta)
    try:
        state = load(weights)
    except Exception as exc:  # safetensors raises its own error type
        raise ModelFileError(f"the weights are unreadable: {exc}", path=str(path)) from None
    wrong = sorted(set(state) ^ set(shapes)) or [k for k in shapes if tuple(state[k].shape) != shapes[k]]
    if wrong:
        raise ModelFileError(f"the weights do not fit the network described in model.json (tensor "
                             f"{wrong[0][:80]!r}{' and others' if len(wrong) > 1 else ''})", path=str(path))
    module = build_network(config)
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as exc:
        raise ModelFileError(f"the weights do not fit the network: {exc}", path=str(path)) from None
    module.to(device).eval()
    return LoadedModel(module=module, config=config, meta=meta)


__all__ = ["FORMAT", "FORMAT_VERSION", "KIND", "KIND_TORCHSCRIPT", "KINDS", "KNOB_TYPES", "MAX_CHANNELS",
           "MAX_COMPRESSION_RATIO", "MAX_KNOBS", "MAX_META_BYTES", "MAX_OUTPUT_SCALE", "MAX_PARAMETERS",
           "ModelFileError", "ModelLimitError", "UntrustedModelError", "LoadedModel", "save_cat", "write_cat",
           "load_cat", "read_cat_info", "check_knob", "check_knobs", "knob_attribute_value", "expected_state",
           "max_torchscript_bytes", "check_trusted"]
