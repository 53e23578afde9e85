"""TorchScript interop: package a user's TorchScript module as a ``.cat`` file (``nodegraph cat
create``, the CatFileCreator node), and export a nodegraph network as a TorchScript module that
follows Nuke's Inference contract (``nodegraph cat export-torchscript``), with a ``.nk`` snippet
holding a CatFileCreator node that turns it into a Nuke ``.cat``.

Custom knob specs (``--knob``, the CatFileCreator node's ``knobs``) read
``NAME[:TYPE[=DEFAULT][:EXTRA]]``:

- ``despill_strength:float=0:0..10``, ``steps:int=4:1..16`` (``EXTRA`` = ``MIN..MAX``, either
  side may be empty: ``0..``); ``refine:bool=true`` (true/false, yes/no, on/off, 1/0);
  ``gamma_input:enum=sRGB,Linear`` (default: the first choice) or ``...=sRGB,Linear:Linear``
  (``EXTRA`` = the default choice); ``offset:xy=0,0`` and ``pivot:xyz=0,0,0`` (optional range);
- ``TYPE`` defaults to ``float`` and ``DEFAULT`` to 0 / false / zeros, so a bare ``NAME`` is a
  float knob starting at 0.

TorchScript archives are loaded with ``torch.jit.load`` (TorchScript's own format: code plus
tensors): packaging loads the module you name to check it; a packaged model is loaded later only
after an explicit opt-in (:mod:`nodegraph.ml.trust`), which packaging it does not grant.
"""

from __future__ import annotations

import datetime as _dt
import io
import os
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from nodegraph import channels as chans
from nodegraph.atomic import atomic_write_bytes
from nodegraph.errors import ChannelError
from nodegraph.ml.modelfile import (FORMAT, FORMAT_VERSION, KIND, KIND_TORCHSCRIPT, ModelFileError,
                                    check_knob, check_knobs, knob_attribute_value, load_cat, read_cat_info,
                                    write_cat)

_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
VERIFY_SIZE = 64


# --- knob specs -----------------------------------------------------------------------------------

def _range(text: str, integer: bool, spec: str) -> tuple[Any, Any]:
    lo, dots, hi = text.partition("..")
    if not dots:
        raise ValueError(f"knob spec {spec!r}: range {text!r} must read MIN..MAX (e.g. 0..10)")
    conv = int if integer else float
    try:
        return (conv(lo) if lo.strip() else None, conv(hi) if hi.strip() else None)
    except ValueError:
        raise ValueError(f"knob spec {spec!r}: range {text!r} must hold numbers") from None


def parse_knob_spec(spec: str) -> dict[str, Any]:
    """A knob description from ``NAME[:TYPE[=DEFAULT][:EXTRA]]`` (see the module docstring);
    raises ``ValueError`` naming the spec."""
    text = spec.strip()
    name, _, rest = text.partition(":")
    name = name.strip()
    if not name.isidentifier():
        raise ValueError(f"knob spec {spec!r}: {name!r} is not a valid attribute name "
                         "(expected NAME[:TYPE[=DEFAULT][:EXTRA]], e.g. despill_strength:float=0:0..10)")
    kind_text, eq, value = rest.partition("=")
    extra = ""
    if eq:
        value, _, extra = value.partition(":")
    else:
        kind_text, _, extra = kind_text.partition(":")
    kind = kind_text.strip() or "float"
    value, extra = value.strip(), extra.strip()
    knob: dict[str, Any] = {"name": name, "type": kind}
    try:
        if kind in ("int", "float"):
            knob["default"] = (int if kind == "int" else float)(value) if value else 0
            if extra:
                knob["min"], knob["max"] = _range(extra, kind == "int", spec)
        elif kind == "bool":
            low = value.lower() or "false"
            if low not in _TRUE + _FALSE:
                raise ValueError(f"knob spec {spec!r}: {value!r} is not true or false")
            knob["default"] = low in _TRUE
            if extra:
                raise ValueError(f"knob spec {spec!r}: a bool knob takes no {extra!r}")
        elif kind == "enum":
            knob["choices"] = [c.strip() for c in value.split(",") if c.strip()]
            if not knob["choices"]:
                raise ValueError(f"knob spec {spec!r}: an enum needs choices (NAME:enum=A,B[:DEFAULT])")
            knob["default"] = extra or knob["choices"][0]
        elif kind in ("xy", "xyz"):
            size = len(kind)
            parts = [p for p in value.split(",")] if value else ["0"] * size
            if len(parts) != size:
                raise ValueError(f"knob spec {spec!r}: an {kind} knob needs {size} comma-separated numbers")
            knob["default"] = [float(p) for p in parts]
            if extra:
                knob["min"], knob["max"] = _range(extra, False, spec)
        else:
            raise ValueError(f"knob spec {spec!r}: unknown type {kind!r} (int, float, bool, enum, xy, xyz)")
        return check_knob(knob)
    except ValueError as exc:
        msg = str(exc)
        raise ValueError(msg if msg.startswith("knob spec") else f"knob spec {spec!r}: {msg}") from None


def knob_spec(knob: dict[str, Any]) -> str:
    """The spec string of a knob description (inverse of :func:`parse_knob_spec`)."""
    kind, default = knob["type"], knob["default"]
    if kind == "enum":
        return f"{knob['name']}:enum={','.join(knob['choices'])}:{default}"
    if kind == "bool":
        return f"{knob['name']}:bool={'true' if default else 'false'}"
    value = ",".join(f"{v:g}" for v in default) if kind in ("xy", "xyz") else f"{default:g}"
    lo, hi = knob.get("min"), knob.get("max")
    rng = "" if lo is None and hi is None else f":{'' if lo is None else f'{lo:g}'}..{'' if hi is None else f'{hi:g}'}"
    return f"{knob['name']}:{kind}={value}{rng}"


def _knobs(knobs: Iterable[Any]) -> list[dict[str, Any]]:
    return check_knobs(parse_knob_spec(k) if isinstance(k, str) else k for k in knobs)


def parse_channels(spec: str | Iterable[str], what: str) -> list[str]:
    """Channel names in Nuke's ``layer.channel`` form from a comma list (``rgba``/``rgb``/``alpha``
    shorthands expand); raises ``ValueError`` naming ``what``."""
    try:
        names = list(chans.expand(spec))
        for n in names:
            chans.split(n)
    except ChannelError as err:
        raise ValueError(f"{what}: {err.message}; give channel names in Nuke's layer.channel form "
                         "(rgba.red,rgba.green,...) or rgba / rgb / alpha") from None
    if not names:
        raise ValueError(f"{what}: no channels given (e.g. rgba.red,rgba.green,rgba.blue)")
    return names


# --- cat create -----------------------------------------------------------------------------------

def create_cat_from_torchscript(torchscript: str | os.PathLike, cat_file: str | os.PathLike | None = None, *,
                                channels_in: str | Iterable[str], channels_out: str | Iterable[str],
                                model_id: str, output_scale: int = 1, knobs: Iterable[Any] = (),
                                verify: bool = True, description: str = "") -> Path:
    """Package the TorchScript module in ``torchscript`` as a ``kind: "torchscript"`` ``.cat``
    (default: next to it, suffix ``.cat``). Checks: Nuke channel names, knob specs or dicts, each
    knob an attribute of the module that accepts its default (set as TorchScript would), and with
    ``verify`` a forward of a ``[1, Cin, 64, 64]`` zero image on the CPU giving ``[1, Cout, 64*s,
    64*s]``. Raises :class:`ModelFileError` naming the file and the problem."""
    import nodegraph

    src = Path(torchscript)
    path = Path(cat_file) if cat_file else src.with_suffix(".cat")
    if path.resolve() == src.resolve():
        raise ModelFileError("the .cat file would overwrite the TorchScript file", path=str(path))
    try:
        cin = parse_channels(channels_in, "channels in")
        cout = parse_channels(channels_out, "channels out")
        specs = _knobs(knobs)
    except ValueError as exc:
        raise ModelFileError(str(exc), path=str(src)) from None
    if not str(model_id).strip():
        raise ModelFileError("model id must not be empty", path=str(src))
    if isinstance(output_scale, bool) or int(output_scale) != output_scale or output_scale < 1:
        raise ModelFileError(f"output scale must be a whole number >= 1, not {output_scale!r}", path=str(src))
    try:
        data = src.read_bytes()
    except FileNotFoundError:
        raise ModelFileError("TorchScript file does not exist", path=str(src)) from None
    except OSError as exc:
        raise ModelFileError(f"cannot read TorchScript file: {exc}", path=str(src)) from None
    try:
        module = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()
    except Exception as exc:
        raise ModelFileError(
            "not a TorchScript archive (make one with torch.jit.script(model).save(PATH) or "
            f"torch.jit.trace; a torch.save checkpoint or a .cat cannot be packaged): {exc}".split("\n")[0],
            path=str(src)) from None
    for knob in specs:
        name = knob["name"]
        if not module._c.hasattr(name) or isinstance(getattr(module, name), nn.Module):
            import re

            used = sorted(set(re.findall(r"self\.([A-Za-z_]\w*)", str(module.code))))
            used = [n for n in used if module._c.hasattr(n) and not isinstance(getattr(module, n), nn.Module)]
            raise ModelFileError(f"knob {name!r} is not an attribute of the TorchScript module, so it could "
                                 f"not be set before each forward; attributes its forward reads: "
                                 f"{', '.join(used) or 'none'}", path=str(src))
        try:
            setattr(module, name, knob_attribute_value(knob, knob["default"]))
        except Exception as exc:
            raise ModelFileError(f"knob {name!r} ({knob['type']}) does not fit the module attribute "
                                 f"{name} = {getattr(module, name)!r}: {str(exc).splitlines()[0]}",
                                 path=str(src)) from None
    scale = int(output_scale)
    if verify:
        s = VERIFY_SIZE
        try:
            with torch.no_grad():
                y = module(torch.zeros(1, len(cin), s, s))
        except Exception as exc:
            raise ModelFileError(f"the module fails on a [1, {len(cin)}, {s}, {s}] float32 CPU input "
                                 f"({len(cin)} channels in): {str(exc).splitlines()[0]}; check the channels "
                                 "or skip the check (--no-verify / verify=False)", path=str(src)) from None
        want = (1, len(cout), s * scale, s * scale)
        if not isinstance(y, torch.Tensor) or tuple(y.shape) != want:
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ModelFileError(f"the module's output is {got} for a [1, {len(cin)}, {s}, {s}] input; "
                                 f"expected {list(want)} ({len(cout)} channels out, output scale {scale}); "
                                 "check the channels and output scale or skip the check (--no-verify)",
                                 path=str(src))
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_id": str(model_id).strip(),
        "kind": KIND_TORCHSCRIPT,
        "channels_in": cin,
        "channels_out": cout,
        "output_scale": scale,
        "knobs": specs,
        "transfer": "none",
        "description": str(description),
        "source": src.name,
        "module_sha256": "",
        "parameters": sum(p.numel() for p in module.parameters()),
        "created_by": f"nodegraph {nodegraph.__version__}",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return write_cat(path, meta, data)


# --- export ---------------------------------------------------------------------------------------

class NukeInferenceModule(nn.Module):
    """A nodegraph network for Nuke's Inference node: one ``[1, C, H, W]`` float input (float32 or
    half, CPU or CUDA: it follows the weights' dtype and device), one output. Encodes the input
    with slog1p and decodes the prediction in float32 around the network; the network's forward
    is restated here (same submodules, same ops) so that it scripts without its Python config."""

    def __init__(self, net: nn.Module, knobs: list[dict[str, Any]]) -> None:
        super().__init__()
        cfg = net.config
        self.stem, self.enc0, self.down1, self.enc1 = net.stem, net.enc0, net.down1, net.enc1
        self.down2, self.enc2, self.dec2, self.up1 = net.down2, net.enc2, net.dec2, net.up1
        self.dec1, self.up0, self.dec0, self.head = net.dec1, net.up0, net.dec0, net.head
        self.has_lstm = net.lstm is not None
        self.gates = net.lstm.gates if net.lstm is not None else nn.Conv2d(1, 4, 1)
        self.lstm_channels = int(cfg.widths[2])
        self.lstm_pad = int(cfg.lstm_kernel // 2)
        self.scales = int(cfg.scales)
        self.pad_multiple = int(cfg.pad_multiple)
        self.cin, self.cout = int(cfg.in_channels), int(cfg.out_channels)
        self.residual = bool(cfg.use_residual)
        for knob in knobs:  # custom knobs as attributes, as Nuke's Inference sets them
            setattr(self, knob["name"], knob_attribute_value(knob, knob["default"]))

    def _lstm(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, first: bool):
        n = self.lstm_channels
        if first:
            z = F.conv2d(x, self.gates.weight[:, :n], self.gates.bias, padding=self.lstm_pad)
            i, f, g, o = z.chunk(4, dim=1)
            c = torch.sigmoid(i) * torch.tanh(g)
        else:
            z = self.gates(torch.cat([x, h], dim=1))
            i, f, g, o = z.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c

    def _up2(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_dtype = x.dtype
        w = self.head.weight
        h0, w0 = x.shape[-2], x.shape[-1]
        e = torch.copysign(torch.log1p(x.float().abs()), x.float()).to(device=w.device, dtype=w.dtype)
        m = self.pad_multiple
        ph, pw = (m - h0 % m) % m, (m - w0 % m) % m
        if ph > 0 or pw > 0:
            e = F.pad(e, [0, pw, 0, ph], mode="replicate")
        levels = [e]
        for _ in range(self.scales - 1):
            levels.append(F.avg_pool2d(levels[-1], 2))
        levels.reverse()
        pred = e.new_zeros(0)
        hs = e.new_zeros(0)
        cs = e.new_zeros(0)
        first = True
        for xs in levels:
            if first:
                if self.cin == self.cout:
                    prev = xs
                else:
                    prev = xs.new_zeros([xs.shape[0], self.cout, xs.shape[2], xs.shape[3]])
            else:
                prev = self._up2(pred)
                if self.has_lstm:
                    hs, cs = self._up2(hs), self._up2(cs)
            inp = torch.cat([xs, prev.to(xs.dtype)], dim=1)
            s0 = self.enc0(F.relu(self.stem(inp)))
            s1 = self.enc1(F.relu(self.down1(s0)))
            b = self.enc2(F.relu(self.down2(s1)))
            if self.has_lstm:
                hs, cs = self._lstm(b, hs, cs, first)
                b = hs
            b = self.dec2(b)
            u1 = self.dec1(F.relu(self.up1(b)) + s1)
            u0 = self.dec0(F.relu(self.up0(u1)) + s0)
            out = self.head(u0)
            pred = out + xs[:, :self.cout] if self.residual else out
            first = False
        y = pred[:, :, :h0, :w0].float()
        return torch.copysign(torch.expm1(y.abs()), y).to(in_dtype)


def _nk_string(value: str) -> str:
    out = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("[", "\\[").replace("$", "\\$")
    return f'"{out}"'


def nk_snippet(meta: dict[str, Any], torchscript_file: str | os.PathLike, cat_file: str | os.PathLike) -> str:
    """A Nuke script snippet holding a CatFileCreator node filled in from ``meta``: paste it into
    Nuke and press "Create .cat file". Custom knobs are user knobs of the node (Nuke reads their
    names, types and defaults), as Nuke's CatFileCreator expects."""
    type_codes = {"int": 3, "bool": 6, "float": 7, "enum": 4, "xy": 12, "xyz": 13}
    lines = [
        f"# CatFileCreator for nodegraph model {meta['model_id']!r}, written by nodegraph cat export-torchscript",
        "CatFileCreator {",
        " inputs 0",
        f" torchScriptFile {_nk_string(Path(torchscript_file).as_posix())}",
        f" catFile {_nk_string(Path(cat_file).as_posix())}",
        f" channelsIn {_nk_string(', '.join(meta['channels_in']))}",
        f" channelsOut {_nk_string(', '.join(meta['channels_out']))}",
        f" modelId {_nk_string(meta['model_id'])}",
        f" outputScale {int(meta.get('output_scale', 1))}",
    ]
    knobs = meta.get("knobs", [])
    if knobs:
        lines.append(" addUserKnob {20 User}")
    for k in knobs:
        code, name, kind = type_codes[k["type"]], k["name"], k["type"]
        if kind == "enum":
            choices = " ".join(_nk_string(c) for c in k["choices"])
            lines.append(f" addUserKnob {{{code} {name} l {name} M {{{choices}}}}}")
            lines.append(f" {name} {_nk_string(k['default'])}")
            continue
        rng = ""
        if kind == "float" and (k.get("min") is not None or k.get("max") is not None):
            rng = f" R {k.get('min') if k.get('min') is not None else 0:g} {k.get('max') if k.get('max') is not None else 1:g}"
        lines.append(f" addUserKnob {{{code} {name} l {name}{rng}}}")
        default = k["default"]
        if kind == "bool":
            lines.append(f" {name} {'true' if default else 'false'}")
        elif kind in ("xy", "xyz"):
            lines.append(f" {name} {{{' '.join(f'{v:g}' for v in default)}}}")
        else:
            lines.append(f" {name} {default:g}")
    lines += [f" name CatFileCreator_{''.join(c if c.isalnum() else '_' for c in meta['model_id'])}", "}", ""]
    return "\n".join(lines)


def reference_forward(loaded, x: torch.Tensor) -> torch.Tensor:
    """nodegraph's own output for a nodegraph-network model: decode(module(encode(x)))."""
    from nodegraph.ml import transfer

    enc, dec = transfer.get(loaded.transfer)
    with torch.no_grad():
        return dec(loaded.module(enc(x)))


def export_torchscript(cat_file: str | os.PathLike, out: str | os.PathLike | None = None, *,
                       nk: bool = True, check_atol: float = 1e-4) -> tuple[Path, Path | None]:
    """Export a nodegraph-network ``.cat`` as a scripted :class:`NukeInferenceModule` at ``out``
    (default: next to it, suffix ``.pt``), checked by ``torch.jit.load`` against nodegraph's own
    output on a small random image; with ``nk`` also ``out`` with suffix ``.nk`` holding a
    CatFileCreator node whose ``catFile`` is ``<name>.nuke.cat``. Returns both paths."""
    cat_file = Path(cat_file)
    kind = read_cat_info(cat_file)["kind"]  # checked before loading: a TorchScript module is never run here
    if kind != KIND:
        raise ModelFileError(f"only nodegraph networks can be exported; this file already holds a "
                             f"TorchScript module (kind {kind!r}): extract model.torchscript "
                             "from the zip instead", path=str(cat_file))
    loaded = load_cat(cat_file, kinds=(KIND,))
    out = Path(out) if out else cat_file.with_suffix(".pt")
    wrapper = NukeInferenceModule(loaded.module, loaded.knobs).eval()
    try:
        scripted = torch.jit.script(wrapper)
        buf = io.BytesIO()
        torch.jit.save(scripted, buf)
    except Exception as exc:  # pragma: no cover - a scripting failure is a bug here
        raise ModelFileError(f"cannot script the network: {exc}", path=str(cat_file)) from None
    data = buf.getvalue()
    reloaded = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, loaded.config.in_channels, 35, 29, generator=g) * 3 - 1
    with torch.no_grad():
        diff = (reloaded(x) - reference_forward(loaded, x)).abs().max().item()
    if not diff <= check_atol:
        raise ModelFileError(f"the exported module differs from nodegraph's output by {diff:g}",
                             path=str(cat_file))
    atomic_write_bytes(out, data, create_directories=True, error=ModelFileError)
    nk_path = None
    if nk:
        nk_path = out.with_suffix(".nk")
        text = nk_snippet(loaded.meta, out.resolve(), out.resolve().with_suffix(".nuke.cat"))
        atomic_write_bytes(nk_path, text.encode(), error=ModelFileError)
    return out, nk_path


__all__ = ["parse_knob_spec", "knob_spec", "parse_channels", "create_cat_from_torchscript",
           "NukeInferenceModule", "nk_snippet", "export_torchscript", "reference_forward"]
