"""Data-parallel CopyCat training on the CPU (gloo, 2 processes): the same seeds give the same
weights as one process with the whole batch; rank 0 alone writes; Nuke's COPYCAT_* variables start
the ranks; a rank killed with SIGKILL stops the other with a message naming it, and --resume then
finishes the run with the weights one process would have."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import nodegraph as ng
from nodegraph.ml.distributed import DistConfig, DistributedError, sync_window
from nodegraph.ml.modelfile import load_cat
from nodegraph.ml.report import read_summary
from nodegraph.ml.train import train

sys.path.insert(0, str(Path(__file__).parents[1] / "ml"))
from test_train import TINY, shot_graph  # noqa: E402

STEPS = 40
#: Collectives of the test runs give up after this (a hang would show as a failure, not a stall).
TIMEOUT = "40"


@pytest.fixture(autouse=True)
def _short_timeout(monkeypatch):
    monkeypatch.setenv("NODEGRAPH_DIST_TIMEOUT", TIMEOUT)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The reference: one process, the whole batch of 4 crops."""
    root = tmp_path_factory.mktemp("one")
    result = train(shot_graph(root, checkpointInterval=1000), "CopyCat1", steps=STEPS, device="cpu",
                   network=TINY, log_every=5, distributed=False)
    return weights(result.model_path), read_summary(result.summary_path)


def weights(path) -> dict[str, torch.Tensor]:
    return load_cat(path, device="cpu").module.state_dict()


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


def test_two_ranks_give_the_weights_of_one_process(tmp_path, one_process):
    reference, ref_rows = one_process
    events = []
    result = train(shot_graph(tmp_path, checkpointInterval=10), "CopyCat1", steps=STEPS, device="cpu", network=TINY,
                   log_every=5, gpus=2, on_event=lambda kind, info: events.append((kind, info)))
    assert result.step == result.total_steps == STEPS and result.batch_size == 4
    assert_same_weights(weights(result.model_path), reference)
    rows = read_summary(result.summary_path)
    assert [r[0] for r in rows] == list(range(5, STEPS + 1, 5))  # each line once: rank 0 alone writes
    for (_, loss, *_), (_, ref, *_) in zip(rows, ref_rows):
        assert loss == pytest.approx(ref, rel=1e-4)  # the whole batch's loss, gathered from both ranks
    plan = next(info for kind, info in events if kind == "plan")
    assert plan["total_steps"] == STEPS and plan["batch_size"] == 4
    assert sorted(p.name for p in result.checkpoints) == [f"CopyCat1.{s}.cat" for s in (10, 20, 30)]


def test_batch_smaller_than_the_ranks_is_refused(tmp_path):
    g = shot_graph(tmp_path, batchSize=1)
    with pytest.raises(DistributedError, match="batch size 1 is smaller than the 2 ranks"):
        train(g, "CopyCat1", steps=5, device="cpu", network=TINY, gpus=2)


def test_environment_of_nuke_and_torchrun():
    nuke = {"COPYCAT_MAIN_ADDR": "10.0.0.5", "COPYCAT_MAIN_PORT": "30000", "COPYCAT_RANK": "2",
            "COPYCAT_WORLD_SIZE": "4", "COPYCAT_SYNC_INTERVAL": "8", "COPYCAT_LOCAL_ADDR": "10.0.0.7"}
    cfg = DistConfig.from_env(nuke)
    assert (cfg.rank, cfg.world_size, cfg.main_addr, cfg.main_port, cfg.sync_interval, cfg.local_addr) == \
        (2, 4, "10.0.0.5", 30000, 8, "10.0.0.7")
    torchrun = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "h", "MASTER_PORT": "29500",
                "TORCHELASTIC_USE_AGENT_STORE": "True"}
    cfg = DistConfig.from_env(torchrun)
    assert (cfg.rank, cfg.world_size, cfg.local_rank, cfg.agent_store, cfg.sync_interval) == (1, 2, 1, True, 1)
    assert DistConfig.from_env({}) is None
    assert DistConfig.from_env({**torchrun, "WORLD_SIZE": "1", "RANK": "0"}) is None
    with pytest.raises(DistributedError, match="COPYCAT_MAIN_PORT not set"):
        DistConfig.from_env({k: v for k, v in nuke.items() if k != "COPYCAT_MAIN_PORT"})
    with pytest.raises(DistributedError, match="COPYCAT_RANK='4' must be a whole number from 0 to 3"):
        DistConfig.from_env({**nuke, "COPYCAT_RANK": "4"})
    with pytest.raises(DistributedError, match="COPYCAT_SYNC_INTERVAL='0'"):
        DistConfig.from_env({**nuke, "COPYCAT_SYNC_INTERVAL": "0"})


def test_sync_window_exchanges_at_intervals_checkpoints_and_the_end():
    # interval 4, checkpoints every 10, 22 steps: sync at 4, 8, 10, 12, 16, 20, 22
    assert [c for c in range(1, 23) if sync_window(c, 22, 4, 10)[1] == c] == [4, 8, 10, 12, 16, 20, 22]
    assert sync_window(9, 22, 4, 10) == (8, 10)  # two steps accumulated, applied at the checkpoint
    assert sync_window(21, 22, 4, 10) == (20, 22)
    assert all(sync_window(c, 22, 1, 10) == (c - 1, c) for c in range(1, 23))


RANK_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    import nodegraph as ng
    from nodegraph.errors import NodeGraphError
    from nodegraph.ml.train import train
    from test_train import TINY
    graph = ng.Graph.load({graph!r})
    try:
        train(graph, "CopyCat1", steps={steps}, device="cpu", network=TINY, log_every=5,
              on_event=lambda kind, info: time.sleep(0.05) if kind == "step" else None)
    except NodeGraphError as err:
        print("error:", err, file=sys.stderr)
        sys.exit(1)
""")


def test_killed_rank_stops_the_other_and_resume_finishes_the_run(tmp_path, one_process):
    """Two ranks started as a Nuke farm would (COPYCAT_* variables); rank 1 is killed after the
    first checkpoint; rank 0 stops naming it; --resume on 2 spawned ranks finishes the run."""
    g = shot_graph(tmp_path, checkpointInterval=10)
    g.save(tmp_path / "g.json")
    script = RANK_SCRIPT.format(tests=str(Path(__file__).parents[1] / "ml"), graph=str(tmp_path / "g.json"),
                                steps=STEPS)
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "COPYCAT_MAIN_ADDR": "127.0.0.1", "COPYCAT_MAIN_PORT": str(port),
           "COPYCAT_WORLD_SIZE": "2", "COPYCAT_LOCAL_ADDR": "127.0.0.1", "NODEGRAPH_DIST_TIMEOUT": TIMEOUT,
           "OMP_NUM_THREADS": "1"}
    ranks = [subprocess.Popen([sys.executable, "-c", script], env={**env, "COPYCAT_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    ost = tmp_path / "train" / "CopyCat1.ost"
    try:
        deadline = time.monotonic() + 120
        while not ost.exists() and ranks[1].poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ost.exists() and ranks[1].poll() is None, ranks[1].communicate()
        ranks[1].send_signal(signal.SIGKILL)
        _, err = ranks[0].communicate(timeout=int(TIMEOUT) + 60)  # no hang: it stops by itself
    finally:
        for p in ranks:
            if p.poll() is None:
                p.kill()
    assert ranks[0].returncode == 1, err
    assert "rank 1 of 2 stopped" in err and "--resume" in err, err
    assert not (tmp_path / "train" / "CopyCat1.cat").exists()

    result = train(ng.Graph.load(tmp_path / "g.json"), "CopyCat1", steps=STEPS, device="cpu", network=TINY,
                   log_every=5, gpus=2, resume=True)
    assert 10 <= result.resumed_from < STEPS and result.step == STEPS
    assert_same_weights(weights(result.model_path), one_process[0])
    steps = [r[0] for r in read_summary(result.summary_path)]
    assert steps == list(range(5, STEPS + 1, 5))  # continuous, no line twice


def test_ranks_stop_early_together(tmp_path):
    """Rank 0 scores the held-out frames at checkpoints and decides the early stop for both ranks."""
    from test_train import CROP, make_shot

    g = ng.Graph()
    plate = g.add("Read", file=make_shot(tmp_path, frames=range(1, 7)))
    grade = g.add("Grade", input=plate, multiply=0.5, gamma=0.8)
    g.add("CopyCat", "CopyCat1", input=plate, groundTruth=grade, dataDirectory=str(tmp_path / "train"),
          modelSize="small", cropSize=CROP, checkpointInterval=10, imageInterval=0, batchSizeType="manual",
          batchSize=4, frames="1-4", validationFrames="5,6", validationInterval=5, earlyStop=True,
          earlyStopPatience=2, earlyStopMinDelta=1000.0)
    events = []
    result = train(g, "CopyCat1", steps=200, device="cpu", network=TINY, log_every=5, gpus=2,
                   on_event=lambda kind, info: events.append((kind, info)))
    # scored at checkpoints only (every 10 steps, not 5); stale twice after the first: stop at step 30
    assert result.stopped_early and result.step == 30
    assert [h["step"] for h in result.heldout] == [10, 20, 30] and result.best_step == 10
    assert any(kind == "warning" and "checkpoints only" in info["message"] for kind, info in events)
    assert result.model_path.read_bytes() == result.best_path.read_bytes()


def test_sharing_gpus_is_opt_in():
    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "h", "MASTER_PORT": "29500"}
    assert DistConfig.from_env(env).share_gpus is False
    assert DistConfig.from_env({**env, "NODEGRAPH_SHARE_GPUS": "1"}).share_gpus is True


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_two_ranks_sharing_one_gpu_train_like_one_process(tmp_path, monkeypatch):
    """Two CUDA ranks on one GPU (gloo between them) learn what one process learns: the same loss
    curve within bf16's noise, and every line written once."""
    ref = train(shot_graph(tmp_path / "one", checkpointInterval=1000), "CopyCat1", steps=STEPS, device="cuda",
                network=TINY, log_every=5, distributed=False)
    monkeypatch.setenv("NODEGRAPH_SHARE_GPUS", "1")
    result = train(shot_graph(tmp_path / "two", checkpointInterval=10), "CopyCat1", steps=STEPS, device="cuda",
                   network=TINY, log_every=5, gpus=2)
    assert result.step == STEPS and result.device.startswith("cuda")
    rows, ref_rows = read_summary(result.summary_path), read_summary(ref.summary_path)
    assert [r[0] for r in rows] == [r[0] for r in ref_rows] == list(range(5, STEPS + 1, 5))
    assert rows[-1][1] < 0.7 * rows[0][1]  # it learns
    for r, q in zip(rows, ref_rows):
        assert r[1] == pytest.approx(q[1], rel=0.1)


def test_ddp_over_the_tied_space_to_depth_form_gives_the_networks_gradients():
    """Data-parallel training on CUDA wraps the tied space-to-depth form in DDP: its parameters are
    the network's own, and DDP's gradients are the plain network's (one gloo rank here)."""
    import socket

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from nodegraph.ml.distributed import _Scales, no_buffer_sync
    from nodegraph.ml.network import NetworkConfig, build_network, multiscale_l1, space_to_depth

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        net = build_network(NetworkConfig(3, 3, **{**TINY, "lstm": True}))
        x, y = torch.rand(2, 3, 32, 40), torch.rand(2, 3, 32, 40)
        loss = multiscale_l1(net.forward_scales(x), net.pyramid(y))
        loss.backward()
        plain = {n: p.grad.clone() for n, p in net.named_parameters()}
        net.zero_grad(set_to_none=True)
        tied = space_to_depth(net, tied=True)
        ddp = DistributedDataParallel(_Scales(tied), **no_buffer_sync())
        assert {id(p) for p in ddp.parameters()} == {id(p) for p in net.parameters()}
        multiscale_l1(ddp(x), tied.pyramid(y)).backward()
        for name, p in net.named_parameters():
            torch.testing.assert_close(p.grad, plain[name], rtol=1e-4, atol=1e-6, msg=name)
    finally:
        dist.destroy_process_group()
