"""How much of a folder of real Nuke scripts nodegraph reads, writes back and renders.

For every ``.nk``/``.gizmo`` under the folder (default ``../shared/data/nk``): does it load, does
``.nk -> graph -> .nk -> graph`` give the same graph, which classes are kept as placeholders, and
for the scripts whose every class nodegraph implements, does each end of the tree (a Write's
input, or a node nothing reads) render its first frame. A script that is a tool rather than a comp
(a gizmo or group whose inputs are left for the user to connect) counts as "needs inputs".

    python benchmarks/nk_corpus.py [FOLDER] [--out benchmarks/results/nk_corpus.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from nodegraph.document import graph_to_dict  # noqa: E402
from nodegraph.errors import NodeGraphError  # noqa: E402
from nodegraph.node import UnknownNode  # noqa: E402
from nodegraph.nuke.reader import read_nk, read_nk_file  # noqa: E402
from nodegraph.nuke.writer import dumps_nk  # noqa: E402
from nodegraph.task import is_task  # noqa: E402

NEEDS_INPUT = ("is not connected",)


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in (".nk", ".gizmo") and p.is_file())


def walk(graph: Any):
    for node in graph:
        yield node
        sub = getattr(node, "subgraph", None)
        if sub is not None:
            yield from walk(sub)


def render_ends(graph: Any) -> tuple[str, list[str]]:
    """'renders', 'needs inputs' or 'fails', with the messages of what did not render."""
    ends = []
    for node in graph:
        if isinstance(node, UnknownNode):
            continue
        if is_task(node):
            ends.extend(src for src in graph.inputs_of(node).values() if not is_task(src))
        elif not graph.outputs_of(node):
            ends.append(node)
    problems: list[str] = []
    frame = int(graph.root.get("first_frame", 1))
    rendered = 0
    for node in dict.fromkeys(ends):
        try:
            graph.evaluate(node, frame)
            rendered += 1
        except NodeGraphError as err:
            problems.append(str(err).splitlines()[0][:200])
    if not problems:
        return ("renders" if rendered else "nothing to render"), []
    if all(any(s in p for s in NEEDS_INPUT) for p in problems):
        return "needs inputs", problems
    return "fails", problems


def survey(folder: Path) -> dict[str, Any]:
    rows = []
    unsupported = collections.Counter()
    files_with = collections.Counter()
    for path in files_in(folder):
        row: dict[str, Any] = {"file": str(path.relative_to(folder))}
        t0 = time.perf_counter()
        try:
            res = read_nk_file(path)
        except NodeGraphError as err:
            row.update(loads=False, error=str(err)[:200])
            rows.append(row)
            continue
        row["load_s"] = round(time.perf_counter() - t0, 4)
        row["bytes"] = path.stat().st_size
        g = res.graph
        row["loads"] = True
        row["nodes"] = sum(1 for _ in walk(g))
        row["warnings"] = len(res.warnings)
        again = read_nk(dumps_nk(g), source=str(path)).graph
        row["round_trips"] = graph_to_dict(again) == graph_to_dict(g)
        row["unsupported"] = dict(res.unsupported)
        unsupported.update(res.unsupported)
        files_with.update(res.unsupported.keys())
        row["all_classes_supported"] = not res.unsupported
        if not res.unsupported:
            with tempfile.TemporaryDirectory():
                row["render"], row["render_problems"] = render_ends(g)
        rows.append(row)
    n = len(rows)
    loaded = [r for r in rows if r.get("loads")]
    supported = [r for r in loaded if r["all_classes_supported"]]
    summary = {
        "files": n,
        "load": len(loaded),
        "round_trip": sum(1 for r in loaded if r["round_trips"]),
        "all_classes_supported": len(supported),
        "render": collections.Counter(r["render"] for r in supported),
        "unsupported_classes_by_nodes": unsupported.most_common(),
        "unsupported_classes_by_files": files_with.most_common(),
        "biggest_file_load_s": max(((r["bytes"], r["load_s"]) for r in loaded), default=None),
    }
    return {"folder": str(folder), "summary": summary, "files": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?", default=str(HERE.parent.parent / "shared" / "data" / "nk"))
    ap.add_argument("--out", default=str(HERE / "results" / "nk_corpus.json"))
    ap.add_argument("--only", default="", help="node types to keep (comma list): every other registered type "
                                               "is treated as unsupported, e.g. to compare with an older node set")
    args = ap.parse_args()
    if args.only:
        from nodegraph.node import registry

        keep = {t.strip() for t in args.only.split(",") if t.strip()}
        for name in list(registry.types()):
            if name not in keep:
                registry._types.pop(name, None)
    result = survey(Path(args.folder))
    result["only"] = sorted(keep) if args.only else None
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    s = result["summary"]
    print(f"{s['files']} files: {s['load']} load, {s['round_trip']} round-trip, "
          f"{s['all_classes_supported']} use only supported classes ({dict(s['render'])})")
    print("placeholders by files:", s["unsupported_classes_by_files"][:20])


if __name__ == "__main__":
    main()
