"""The fast training path keeps training what it was: the vectorised crop sampler draws the same
crops with the same distribution (on the CPU and on the GPU), training in space-to-depth form
computes the same loss and gradients and trains the same weights, the sampler's random state
survives a resume across devices, and on the GPU a training step never waits for the host."""

from __future__ import annotations

import collections

import pytest
import torch

from nodegraph.ml.dataset import CELL, DataSet, _augment
from nodegraph.ml.network import NetworkConfig, build_network, multiscale_l1, space_to_depth
from nodegraph.ml.train import Trainer, _set_sampler_state

TINY = {"widths": (8, 16, 16), "enc_blocks": (1, 1, 1), "dec_blocks": (1, 1, 1), "scales": 2, "lstm": False}
N_FRAMES, SIDE, CROP = 3, 64, 16


def coded_dataset(device: str = "cpu") -> DataSet:
    """One channel whose value codes (frame, row, column); the ground truth differs from the input
    only in a patch of frame 1, so the importance map is far from uniform."""
    x = torch.arange(N_FRAMES * SIDE * SIDE, dtype=torch.float32).view(N_FRAMES, 1, SIDE, SIDE)
    y = x.clone()
    y[1, :, 40:56, 8:20] += 1000.0
    ds = DataSet(list(range(1, N_FRAMES + 1)), ("rgba.red",), ("rgba.red",), x, y)
    ds.build_importance(CROP)
    return ds.to(torch.device(device))


def decode_crops(ds: DataSet, xb: torch.Tensor, yb: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """(frame, top, left, symmetry) of every crop, checked pixel for pixel against the frames."""
    found = []
    x, y = ds.x.cpu(), ds.y.cpu()
    for xc, yc in zip(xb.cpu(), yb.cpu()):
        lo = int(xc.min())  # the window's top-left pixel holds its smallest code, whatever the symmetry
        f, rest = divmod(lo, SIDE * SIDE)
        top, left = divmod(rest, SIDE)
        assert 0 <= top <= SIDE - CROP and 0 <= left <= SIDE - CROP  # inside the frame
        window_x = x[f, :, top:top + CROP, left:left + CROP]
        window_y = y[f, :, top:top + CROP, left:left + CROP]
        ops = [op for op in range(8) if torch.equal(_augment(window_x, op), xc)]
        assert len(ops) == 1, "a crop is not one of the 8 symmetries of a window of the frames"
        assert torch.equal(_augment(window_y, ops[0]), yc), "input and ground truth crops disagree"
        found.append((f, top, left, ops[0]))
    return found


def exact_distribution(ds: DataSet) -> dict[str, dict[int, float]]:
    """Marginals of (frame, top, left) by enumeration: a cell by the importance weights, then each
    pixel of the cell alike, the crop centred there and clamped inside the frame."""
    ch, cw = ds._cells
    out: dict[str, dict[int, float]] = {"frame": collections.Counter(), "top": collections.Counter(),
                                        "left": collections.Counter()}
    for idx, w in enumerate(ds.weights.tolist()):
        if w == 0:
            continue
        f, cell = divmod(idx, ch * cw)
        cy, cx = divmod(cell, cw)
        out["frame"][f] += w
        for j in range(CELL):
            out["top"][min(max(cy * CELL + j - CROP // 2, 0), SIDE - CROP)] += w / CELL
            out["left"][min(max(cx * CELL + j - CROP // 2, 0), SIDE - CROP)] += w / CELL
    return out


def total_variation(counts: collections.Counter, exact: dict[int, float]) -> float:
    n = sum(counts.values())
    keys = set(counts) | set(exact)
    return 0.5 * sum(abs(counts.get(k, 0) / n - exact.get(k, 0.0)) for k in keys)


def check_sampler(device: str) -> None:
    ds = coded_dataset(device)
    gen = torch.Generator(device=device).manual_seed(5)
    crops = []
    for _ in range(25):
        xb, yb = ds.sample(200, CROP, gen)
        assert xb.shape == (200, 1, CROP, CROP) and xb.device.type == torch.device(device).type
        crops += decode_crops(ds, xb, yb)
    exact = exact_distribution(ds)
    for i, name in enumerate(("frame", "top", "left")):
        tv = total_variation(collections.Counter(c[i] for c in crops), exact[name])
        assert tv < 0.04, (name, tv)
    ops = collections.Counter(c[3] for c in crops)
    assert set(ops) == set(range(8))
    assert max(abs(n / len(crops) - 1 / 8) for n in ops.values()) < 0.02
    # the patch that differs draws far more crops than its share of the area
    assert exact["frame"][1] > 0.5 and abs(sum(c[0] == 1 for c in crops) / len(crops) - exact["frame"][1]) < 0.03

    xb, yb = ds.sample(64, CROP, torch.Generator(device=device).manual_seed(1), augment=False)
    assert {c[3] for c in decode_crops(ds, xb, yb)} == {0}


def test_sampler_draws_windows_of_the_frames_with_the_importance_distribution():
    check_sampler("cpu")


@pytest.mark.gpu
def test_gpu_sampler_draws_the_same_distribution_without_syncing():
    check_sampler("cuda")
    ds = coded_dataset("cuda")
    gen = torch.Generator(device="cuda").manual_seed(2)
    ds.sample(4, CROP, gen)  # first call: the per-device CDF is made (a copy to the device)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        xb, _ = ds.sample(16, CROP, gen)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert xb.is_contiguous(memory_format=torch.channels_last)


def test_sampler_is_reproducible_from_the_generator_state():
    ds = coded_dataset()
    gen = torch.Generator().manual_seed(9)
    state = gen.get_state()
    a = ds.sample(8, CROP, gen)
    gen.set_state(state)
    b = ds.sample(8, CROP, gen)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


# --- space-to-depth training -----------------------------------------------------------------------
@pytest.mark.parametrize("lstm", [False, True])
def test_space_to_depth_training_form_has_the_same_loss_and_gradients(lstm):
    torch.manual_seed(0)
    net = build_network(NetworkConfig(3, 3, **{**TINY, "lstm": lstm, "scales": 3}))
    tied = space_to_depth(net, tied=True)
    assert {id(p) for p in tied.parameters()} == {id(p) for p in net.parameters()}
    x, y = torch.rand(2, 3, 48, 40) * 2 - 0.5, torch.rand(2, 3, 48, 40)
    grads = []
    losses = []
    for model in (net, tied):
        net.zero_grad(set_to_none=True)
        loss = multiscale_l1(model.forward_scales(x), model.pyramid(y))
        loss.backward()
        losses.append(loss.detach())
        grads.append([p.grad.clone() for p in net.parameters()])
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    for a, b in zip(grads[0], grads[1]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def _shot(root):
    import nodegraph as ng
    from nodegraph import channels as chans
    from nodegraph.image import Box, Format, Image
    from nodegraph.io import write_image

    gen = torch.Generator().manual_seed(1)
    (root / "plate").mkdir(parents=True, exist_ok=True)
    for f in range(1, 5):
        img = torch.nn.functional.interpolate(torch.rand(1, 3, 16, 16, generator=gen), size=(64, 64),
                                              mode="bicubic")[0].clamp(0, None) * 1.5
        write_image(root / "plate" / f"plate.{f:04d}.exr", Image(img, chans.RGB, Box(0, 0, 64, 64),
                                                                 Format.of_size(64, 64)), datatype="float")
    g = ng.Graph()
    plate = g.add("Read", file=str(root / "plate" / "plate.####.exr"))
    grade = g.add("Grade", input=plate, multiply=0.5, gamma=0.8)
    g.add("CopyCat", "CopyCat1", input=plate, groundTruth=grade, dataDirectory=str(root / "train"),
          cropSize=32, checkpointInterval=1000, imageInterval=0, learningRate=1e-3, batchSizeType="manual",
          batchSize=4)
    return g


def test_training_in_space_to_depth_form_trains_the_same_weights(tmp_path):
    weights = []
    for s2d in (False, True):
        trainer = Trainer(_shot(tmp_path / str(s2d)), "CopyCat1", steps=6, device="cpu", network=TINY,
                          space_to_depth=s2d)
        trainer.prepare()
        result = trainer.run()
        assert result.model_path is not None
        weights.append(trainer.model.state_dict())
    assert weights[0].keys() == weights[1].keys()  # the model file's layout either way
    for name in weights[0]:
        torch.testing.assert_close(weights[1][name], weights[0][name], rtol=1e-3, atol=2e-5, msg=name)


# --- the sampler's random state across devices -------------------------------------------------
def test_sampler_state_of_another_device_kind_seeds_deterministically():
    philox = torch.tensor(list(range(16)), dtype=torch.uint8)  # a CUDA generator's seed + offset
    a, b = torch.Generator(), torch.Generator()
    _set_sampler_state(a, philox)
    _set_sampler_state(b, philox)
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
    with pytest.raises(RuntimeError):
        _set_sampler_state(torch.Generator(), torch.zeros(3, dtype=torch.uint8))


@pytest.mark.gpu
def test_cpu_sampler_state_resumes_on_a_gpu_generator():
    saved = torch.Generator().manual_seed(4).get_state()
    a, b = torch.Generator(device="cuda"), torch.Generator(device="cuda")
    _set_sampler_state(a, saved)
    _set_sampler_state(b, saved)
    assert torch.equal(torch.rand(4, generator=a, device="cuda"), torch.rand(4, generator=b, device="cuda"))
    same = torch.Generator(device="cuda").manual_seed(3)
    other = torch.Generator(device="cuda")
    _set_sampler_state(other, same.get_state())
    assert torch.equal(torch.rand(4, generator=same, device="cuda"), torch.rand(4, generator=other, device="cuda"))


# --- no host sync in a step ------------------------------------------------------------------------
@pytest.mark.gpu
def test_a_training_step_on_the_gpu_does_not_sync(tmp_path):
    """Between summary lines (log_every) the loop only queues work: sampling, forward, loss,
    backward, clipping, the optimizer and the divergence flag never wait for the device."""
    total, seen = 12, []

    def on_event(kind, info):
        if kind == "step":
            seen.append(info["step"])
            # from the end of step 2 (cuDNN has timed its algorithms) to the end of the last
            # step but one: any synchronising call in steps 3..total-1 raises
            torch.cuda.set_sync_debug_mode("error" if 2 <= info["step"] < total - 1 else "default")

    trainer = Trainer(_shot(tmp_path), "CopyCat1", steps=total, device="cuda", network=TINY, log_every=100,
                      on_event=on_event)
    trainer.prepare()
    try:
        result = trainer.run()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert seen == list(range(1, total + 1)) and result.final_loss is not None
    assert trainer.gen.device.type == "cuda"
