"""A Dask nanny starts its worker with ``MALLOC_TRIM_THRESHOLD_=65536``, which turns off glibc's
dynamic mmap threshold: every image-sized buffer is then a fresh mmap whose pages fault in on each
use (a worker rendered at half the in-process speed). While a worker renders, nodegraph.farm keeps
such buffers on the heap. Page faults are counted, not time, so a loaded machine does not matter."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                                reason="glibc's malloc only")

CODE = textwrap.dedent("""
    import resource
    import numpy as np
    from nodegraph import farm

    def faults():
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(20):
            a = np.ones(2 << 20, np.float32)  # 8 MiB, every page touched, as an image tensor is
            del a
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0

    before = faults()
    farm._heap_for_images(True)   # a render's plugin is set up
    faults()                      # the heap grows once
    during = faults()
    farm._heap_for_images(False)  # the worker's last render ended
    print(before, during)
""")


def test_worker_keeps_image_buffers_on_the_heap_while_rendering():
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    before, during = map(int, out.stdout.split())
    # each 8 MiB buffer faulted in afresh (2048 pages; fewer faults where huge pages back some), then none
    assert before > 20 * 250
    assert during * 10 < before
