"""Which TorchScript models this process may run: an explicit opt-in, never a property of a graph.

A ``kind: "torchscript"`` ``.cat`` file holds a TorchScript archive; loading it
(``torch.jit.load``) runs code its author wrote. nodegraph's own networks (``kind:
"nodegraph-network"``), images and JSON graphs are data only: safe to open from strangers. So a
graph that points an Inference node (or CopyCat's ``checkpointFile``) at a TorchScript model may
only load it when the person running nodegraph said so, in one of these ways:

- the environment variable ``NODEGRAPH_ALLOW_TORCHSCRIPT=1`` (a farm sets it once for jobs it
  trusts; render worker processes inherit it);
- the environment variable ``NODEGRAPH_TRUSTED_MODEL_DIRS``: folders (separated by ``os.pathsep``)
  whose TorchScript models may be loaded, wherever the graph came from (the file's real path,
  symlinks resolved, must lie inside one);
- the command line flag ``--allow-torchscript`` of ``nodegraph render`` and ``nodegraph demo``;
- in Python, :func:`allow_torchscript` (``nodegraph.ml.trust.allow_torchscript()``) or
  :func:`trust_model_folder`. Both write the environment variables above, so render worker
  processes see the same setting.

Nothing a graph document holds can opt in: there is no knob for it, and the setting lives in
the process environment, which a JSON graph cannot change. A model you packaged yourself with
``nodegraph cat create`` (or ``CatFileCreator.create()``) in this process is not trusted
automatically either: the file on disk is what gets loaded later, and it may have been replaced
in between; opt in, or keep your models in a trusted folder.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_ALLOW = "NODEGRAPH_ALLOW_TORCHSCRIPT"
ENV_FOLDERS = "NODEGRAPH_TRUSTED_MODEL_DIRS"
CLI_FLAG = "--allow-torchscript"
_TRUE = ("1", "true", "yes", "on")


def torchscript_allowed() -> bool:
    """Whether every TorchScript model may be loaded (``NODEGRAPH_ALLOW_TORCHSCRIPT``)."""
    return os.environ.get(ENV_ALLOW, "").strip().lower() in _TRUE


def allow_torchscript(enabled: bool = True) -> None:
    """Allow (or forbid again) loading TorchScript models in this process and its render workers."""
    os.environ[ENV_ALLOW] = "1" if enabled else "0"


def trusted_folders() -> list[Path]:
    """The folders of ``NODEGRAPH_TRUSTED_MODEL_DIRS``, resolved (empty entries ignored)."""
    out = []
    for item in os.environ.get(ENV_FOLDERS, "").split(os.pathsep):
        if item.strip():
            try:
                out.append(Path(item.strip()).expanduser().resolve())
            except (OSError, RuntimeError, ValueError):
                continue
    return out


def trust_model_folder(folder: str | os.PathLike[str]) -> None:
    """Add ``folder`` to ``NODEGRAPH_TRUSTED_MODEL_DIRS`` (for this process and its render workers)."""
    items = [i for i in os.environ.get(ENV_FOLDERS, "").split(os.pathsep) if i.strip()]
    items.append(str(Path(folder).expanduser().resolve()))
    os.environ[ENV_FOLDERS] = os.pathsep.join(items)


def is_trusted(path: str | os.PathLike[str]) -> bool:
    """Whether a TorchScript model at ``path`` may be loaded now."""
    if torchscript_allowed():
        return True
    folders = trusted_folders()
    if not folders:
        return False
    try:
        real = Path(path).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return False
    return any(real.is_relative_to(folder) for folder in folders)


def how_to_opt_in() -> str:
    """The sentence an error shows: every way of allowing TorchScript models."""
    return (f"TorchScript models run code, so nodegraph loads them only when you opt in: pass "
            f"{CLI_FLAG} to `nodegraph render` / `nodegraph demo`, set {ENV_ALLOW}=1, list the model's "
            f"folder in {ENV_FOLDERS}, or call nodegraph.ml.trust.allow_torchscript() in Python; "
            f"do so only for models whose origin you trust")


__all__ = ["CLI_FLAG", "ENV_ALLOW", "ENV_FOLDERS", "allow_torchscript", "how_to_opt_in", "is_trusted",
           "torchscript_allowed", "trust_model_folder", "trusted_folders"]
