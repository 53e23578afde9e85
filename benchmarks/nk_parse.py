""".nk parsing and loading speed: nodegraph.nuke.script.parse_script (TCL lexing, node bodies, stack
language) and nodegraph.nuke.reader.read_nk (the whole import into a Graph).

Scripts: the biggest public script in ../shared/data/nk, a synthetic ~1 MB script (target: parsed
in under 0.5 s) and a synthetic ~50 MB one; the synthetic ones repeat the biggest script's nodes
with every name and stack variable renamed per copy, so each copy is a valid, separate tree.

Floor, measured in the same run: splitting the same text into lines and whitespace-separated
tokens with one compiled regular expression (``re.findall``), the least any Python tokenizer of
it must cost. Reported: MB/s (1 MB = 10**6 characters), seconds, nodes, peak RSS.

    python benchmarks/nk_parse.py [--repeats 3] [--big-mb 50] [--out NAME]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import best_of, peak_rss_mib, write_result  # noqa: E402

from nodegraph.nuke.reader import read_nk  # noqa: E402
from nodegraph.nuke.script import parse_script  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nk"
_FLOOR = re.compile(r"\S+")
_RENAME = re.compile(r"(?m)(\$?\b[NC][0-9a-f]{6,}\b|^( *name) (\S+))")


def biggest() -> Path:
    files = [p for p in DATA.rglob("*") if p.suffix in (".nk", ".gizmo")]
    return max(files, key=lambda p: p.stat().st_size)


def synthetic(text: str, size: int) -> str:
    """``text``'s statements after its Root block, repeated to ``size`` characters, renamed per copy."""
    start = text.index("\n}\n", text.index("\nRoot {")) + 3 if "\nRoot {" in text else 0
    body = text[start:]
    copies = []
    total = 0
    i = 0
    while total < size:
        tag = f"_{i}"
        copy = _RENAME.sub(lambda m: f"{m.group(2)} {m.group(3)}{tag}" if m.group(2) else m.group(1) + tag, body)
        copies.append(copy)
        total += len(copy)
        i += 1
    return "version 14.0 v6\nRoot {\n inputs 0\n}\n" + "".join(copies)


def measure(name: str, text: str, repeats: int, load_too: bool = True) -> dict:
    script = parse_script(text)
    nodes = sum(1 for _ in script.walk())
    best, times = best_of(lambda: parse_script(text), repeats)
    floor, _ = best_of(lambda: _FLOOR.findall(text), repeats)
    load, load_times = best_of(lambda: read_nk(text), repeats) if load_too else (None, [])
    mb = len(text) / 1e6
    row = {"script": name, "mb": round(mb, 3), "nodes": nodes, "warnings": len(script.warnings),
           "seconds": round(best, 4), "mb_per_s": round(mb / best, 2), "times": [round(t, 4) for t in times],
           "floor_findall_seconds": round(floor, 4), "floor_mb_per_s": round(mb / floor, 2)}
    if load is not None:  # the whole import: parse, knobs converted, nodes, groups, links (a Graph)
        row.update(load_seconds=round(load, 4), load_mb_per_s=round(mb / load, 2),
                   load_times=[round(t, 4) for t in load_times])
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--big-mb", type=float, default=50.0)
    ap.add_argument("--out", default="nk_parse")
    args = ap.parse_args()
    path = biggest()
    text = path.read_text(encoding="utf-8", errors="replace")
    rows = [measure(f"{path.parent.name}/{path.name}", text, args.repeats)]
    one = synthetic(text, 1_000_000)
    rows.append(measure("synthetic_1MB", one, args.repeats))
    big = synthetic(text, int(args.big_mb * 1e6))
    rows.append(measure(f"synthetic_{args.big_mb:g}MB", big, max(1, args.repeats - 2), load_too=False))
    write_result(args.out, {"scripts": rows, "one_mb_seconds": rows[1]["seconds"],
                            "one_mb_load_seconds": rows[1].get("load_seconds"),
                            "one_mb_target_seconds": 0.5, "peak_rss_mib": round(peak_rss_mib(), 1)})


if __name__ == "__main__":
    main()
