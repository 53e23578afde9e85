"""A small comp built in Python: colour bars graded through a ramp matte, over a checkerboard.

Run it, then render the saved document from the command line:

    python examples/basic_comp.py out/            # writes out/basic_comp.json and renders frames 1-3
    nodegraph render out/basic_comp.json --frames 1-10 --workers 2
    nodegraph render out/basic_comp.json --frames 1 --set Fade.mix=0.5
"""

from __future__ import annotations

import sys
from pathlib import Path

import nodegraph as ng
from nodegraph.render import render


def build(out_dir: Path) -> ng.Graph:
    g = ng.Graph()
    bg = g.add("CheckerBoard2", name="Background", format="HD_720", boxsize=80)
    bars = g.add("ColorBars", name="Bars", format="HD_720")
    matte = g.add("Ramp", name="Matte", format="HD_720", p0=(0, 360), p1=(1280, 360), type="smooth",
                  output="alpha")
    cut = g.add("Merge2", name="Cut", A=matte, B=bars, operation="mask", Achannels="alpha", output="rgba")
    over = g.add("Merge2", name="Fade", A=cut, B=bg, operation="over")
    g.add("Write", name="WriteEXR", input=over, file=str(out_dir / "basic.####.exr"), channels="rgba",
          compression="zip", create_directories=True)
    g.add("Write", name="WriteJPEG", input=over, file=str(out_dir / "basic.####.jpg"), create_directories=True)
    return g


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "basic_comp_out").resolve()
    graph = build(out)
    issues = graph.validate()
    if issues:
        sys.exit("\n".join(map(str, issues)))
    out.mkdir(parents=True, exist_ok=True)
    graph.save(out / "basic_comp.json")
    result = render(graph, frames="1-3")
    result.raise_for_failures()
    print(f"wrote {len(result.written)} frames under {out}; graph saved to {out / 'basic_comp.json'}")
