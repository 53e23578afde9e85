"""The models a server offers: every ``.cat`` file of the configured folders, and their options.

Only files found by scanning those folders are ever served; a request names a model by the name
listed here, never by a path, so no client can make the server open a file of its choosing.
``model.json`` is read (and checked) when a folder is scanned; the module itself is loaded on the
first request, through :data:`nodegraph.ml.infer.model_cache`. TorchScript models (they run
code) are listed only when :mod:`nodegraph.ml.trust` allows them (``--allow-torchscript``, a
trusted folder); nothing else loads code and nothing loads a pickle.

A model's custom knobs become ML-Server options: ``bool`` -> bool option, ``int`` -> int
option, ``float`` -> float option, ``xy`` / ``xyz`` -> a float option of 2 / 3 values, ``enum``
-> a multiple-choice option and, since Foundry's MLClient forwards string options but not
multiple-choice ones, also a string option holding the choice's name. With a shared token the
server also lists a string option ``token`` for the client to fill in.
"""

from __future__ import annotations

import math
import threading
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nodegraph.errors import KnobError, NodeGraphError
from nodegraph.ml import infer
from nodegraph.ml import modelfile
from nodegraph.ml import trust

from .protocol import TOKEN_OPTION, ServeError, channel_spec, pb


class UnknownModelError(ServeError):
    """A request named a model the server does not offer."""


class OptionError(ServeError):
    """A request's option is unknown, of the wrong kind, or out of the knob's range."""


@dataclass
class ServedModel:
    """One model file offered under ``name``; ``meta`` is its checked ``model.json``."""

    name: str
    path: Path
    meta: dict[str, Any]
    signature: tuple[int, int] = (0, 0)

    @property
    def knobs(self) -> list[dict[str, Any]]:
        return [dict(k) for k in self.meta.get("knobs", []) or []]

    @property
    def label(self) -> str:
        kind = "TorchScript" if self.meta.get("kind") == modelfile.KIND_TORCHSCRIPT else "CopyCat"
        return f"{self.name} ({kind})"

    def to_message(self, *, token: bool = False) -> pb.Model:
        """The ``Model`` of an info answer: inputs, outputs and every knob as an option at its default."""
        m = pb.Model(name=self.name, label=self.label)
        for images, key in ((m.inputs, "channels_in"), (m.outputs, "channels_out")):
            images.add(name=channel_spec(self.meta[key]), channels=len(self.meta[key]))
        for knob in self.knobs:
            kind, name, default = knob["type"], knob["name"], knob["default"]
            if kind == "bool":
                m.bool_options.add(name=name, values=[default])
            elif kind == "int":
                m.int_options.add(name=name, values=[default])
            elif kind == "float":
                m.float_options.add(name=name, values=[default])
            elif kind in ("xy", "xyz"):
                m.float_options.add(name=name, values=list(default))
            elif kind == "enum":
                m.mc_options.add(name=name, value=default, choices=knob["choices"])
                m.string_options.add(name=name, values=[default])
        if token:
            m.string_options.add(name=TOKEN_OPTION, values=[""])
        return m

    def knob_values(self, m: pb.Model) -> dict[str, Any]:
        """The knob values a request's options give (unset knobs keep their defaults), checked like
        the Inference node checks ``knobValues``; :class:`OptionError` names the option."""
        specs = {k["name"]: k for k in self.knobs}
        given: dict[str, Any] = {}

        def put(name: str, value: Any, kinds: tuple[str, ...], what: str) -> None:
            spec = specs.get(name)
            if spec is None:
                raise OptionError(f"model {self.name!r} has no option {name!r}; its options: "
                                  f"{', '.join(specs) or 'none'}")
            if spec["type"] not in kinds:
                raise OptionError(f"option {name!r} of model {self.name!r} is a {spec['type']} knob, "
                                  f"not a {what} option")
            if name in given and given[name] != value:
                raise OptionError(f"option {name!r} is given twice with different values")
            given[name] = value

        def single(option: Any, what: str) -> Any:
            if len(option.values) != 1:
                raise OptionError(f"{what} option {option.name!r} needs exactly one value, got {len(option.values)}")
            return option.values[0]

        for o in m.bool_options:
            put(o.name, bool(single(o, "bool")), ("bool",), "bool")
        for o in m.int_options:
            put(o.name, int(single(o, "int")), ("int",), "int")
        for o in m.float_options:
            spec = specs.get(o.name, {})
            size = {"xy": 2, "xyz": 3}.get(spec.get("type", ""))
            if size:  # Foundry's MLClient keeps only the first value: one value sets every component
                values = [_float32(v) for v in o.values]
                if len(values) not in (1, size):
                    raise OptionError(f"option {o.name!r} needs {size} values (or one for all), got {len(values)}")
                put(o.name, values * size if len(values) == 1 else values, ("xy", "xyz"), "float")
            else:
                put(o.name, _float32(single(o, "float")), ("float",), "float")
        for o in m.string_options:
            if o.name == TOKEN_OPTION and TOKEN_OPTION not in specs:
                continue
            put(o.name, single(o, "string"), ("enum",), "string")
        for o in m.mc_options:
            put(o.name, o.value, ("enum",), "multiple-choice")
        for o in m.button_options:
            raise OptionError(f"model {self.name!r} has no button {o.name!r}")
        probe = types.SimpleNamespace(meta=self.meta, module=None)  # no module needed to check values
        try:
            return infer.validate_knob_values(probe, given)
        except KnobError as err:
            knob = (err.knob or "").removeprefix("knobValues.")
            raise OptionError(f"option {knob!r} of model {self.name!r}: {err.message}") from None


def _float32(value: float) -> float:
    """A float option's value as the decimal it was typed as: the wire's float32 of 0.1 is
    0.10000000149..., which a knob's ``max`` of 0.1 would refuse; the shortest decimal that reads
    back as the same float32 is what the artist meant."""
    if not math.isfinite(value):
        return float(value)
    return float(np.format_float_positional(np.float32(value), unique=True, trim="-"))


@dataclass
class Catalog:
    """The models of ``folders`` (each scanned, not recursively, for ``*.cat``), by name.

    A model is named after its file (``Keyer.cat`` -> ``Keyer``); where two folders hold the same
    file name, both are named ``FOLDER/NAME`` by their folder's name. :meth:`refresh` rescans
    (files added, changed or removed since); ``model.json`` is re-read only for changed files.
    ``skipped`` lists the files not offered, each with the reason.
    """

    folders: list[Path]
    models: dict[str, ServedModel] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    _seen: dict[Path, tuple[tuple[int, int], dict[str, Any] | str]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.folders = [Path(f).expanduser() for f in self.folders]
        for folder in self.folders:
            if not folder.is_dir():
                raise ServeError("the model folder does not exist or is not a folder", path=str(folder))
        self.refresh()

    def refresh(self) -> "Catalog":
        with self._lock:
            found: list[tuple[Path, Path, dict[str, Any]]] = []
            skipped: dict[str, str] = {}
            seen: dict[Path, tuple[tuple[int, int], dict[str, Any] | str]] = {}
            for folder in self.folders:
                try:
                    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".cat" and p.is_file())
                except OSError as exc:
                    skipped[str(folder)] = f"cannot list the folder: {exc.strerror or exc}"
                    continue
                for path in files:
                    meta = self._read(path, seen)
                    if isinstance(meta, str):
                        skipped[str(path)] = meta
                    elif meta.get("kind") == modelfile.KIND_TORCHSCRIPT and not trust.is_trusted(path):
                        skipped[str(path)] = ("a TorchScript model (it runs code) and nothing opted in: "
                                              "start the server with --allow-torchscript or trust its folder")
                    else:
                        found.append((folder, path, meta))
            self._seen = seen
            self.skipped = skipped
            self.models = _named(found, seen)
        return self

    def _read(self, path: Path, seen: dict) -> dict[str, Any] | str:
        try:
            st = path.stat()
        except OSError as exc:
            return f"cannot read the file: {exc.strerror or exc}"
        signature = (st.st_size, st.st_mtime_ns)
        old = self._seen.get(path)
        if old is not None and old[0] == signature:
            seen[path] = old
            return old[1]
        try:
            meta: dict[str, Any] | str = modelfile.read_cat_info(path)
        except NodeGraphError as err:
            meta = err.message
        seen[path] = (signature, meta)
        return meta

    def get(self, name: str) -> ServedModel:
        model = self.models.get(name)
        if model is None:
            names = ", ".join(sorted(self.models)[:50]) or "none"
            raise UnknownModelError(f"no model named {name[:200]!r} is served; models: {names}")
        return model


def _named(found: list[tuple[Path, Path, dict[str, Any]]], seen: dict) -> dict[str, ServedModel]:
    stems: dict[str, int] = {}
    for _folder, path, _meta in found:
        stems[path.stem] = stems.get(path.stem, 0) + 1
    out: dict[str, ServedModel] = {}
    for folder, path, meta in found:
        base = path.stem if stems[path.stem] == 1 else f"{folder.resolve().name}/{path.stem}"
        name, n = base, 1
        while name in out:  # two folders of the same name holding the same file name
            n += 1
            name = f"{base}#{n}"
        out[name] = ServedModel(name, path, meta, seen[path][0])
    return out


__all__ = ["Catalog", "OptionError", "ServedModel", "UnknownModelError"]
