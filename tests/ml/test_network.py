"""The CopyCat network: shapes for any size and channel count, weight counts per size, the
multi-scale outputs, near-identity start of residual models, gradients, FLOP counts against
PyTorch's own counter, bf16 autocast, and the transfer curve's exact round trip."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nodegraph.ml import transfer
from nodegraph.ml.network import (SIZES, NetworkConfig, SpaceToDepthNet, build_network, count_flops,
                                  count_parameters, flops_per_pixel, multiscale_l1, space_to_depth)

# A narrow network with the same structure keeps the shape tests fast on CPU.
TINY = {"widths": (4, 8, 8), "enc_blocks": (1, 1, 1), "dec_blocks": (1, 1, 1)}


def tiny(cin: int, cout: int, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network(NetworkConfig(cin, cout, **{**TINY, **kw})).eval()


@pytest.mark.parametrize("cin,cout", [(1, 1), (3, 1), (4, 3), (3, 3)])
@pytest.mark.parametrize("hw", [(16, 16), (37, 53), (1, 1), (5, 70)])
def test_shapes_any_size_and_channels(cin, cout, hw):
    net = tiny(cin, cout)
    x = torch.randn(2, cin, *hw)
    with torch.no_grad():
        y = net(x)
        scales = net.forward_scales(x)
    assert y.shape == (2, cout, *hw)
    h, w = hw
    assert [tuple(p.shape[-2:]) for p in scales] == [(math.ceil(h / 4), math.ceil(w / 4)),
                                                      (math.ceil(h / 2), math.ceil(w / 2)), (h, w)]
    assert torch.equal(scales[-1], y)
    assert [tuple(t.shape) for t in net.pyramid(torch.randn(2, cout, *hw))] == [tuple(p.shape) for p in scales]
    assert torch.isfinite(y).all()


def test_scales_and_lstm_options():
    for scales in (1, 2, 4):
        net = tiny(3, 3, scales=scales, lstm=False)
        out = net.forward_scales(torch.randn(1, 3, 20, 24))
        assert len(out) == scales and out[-1].shape == (1, 3, 20, 24)
    assert tiny(3, 3, lstm=False).lstm is None


def test_parameter_counts():
    counts = {s: count_parameters(build_network(NetworkConfig(3, 3, size=s))) for s in SIZES}
    assert 6e6 <= counts["medium"] <= 8e6
    assert 3.0 <= counts["medium"] / counts["small"] <= 5.0
    assert counts["large"] > 1.5 * counts["medium"]
    # channel counts change only the stem and head
    assert abs(count_parameters(build_network(NetworkConfig(4, 1))) - counts["medium"]) < 10_000


def test_config_round_trip_and_defaults():
    cfg = NetworkConfig(4, 3, size="small")
    assert NetworkConfig.from_dict(cfg.to_dict()) == cfg
    import json
    assert NetworkConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.widths == (32, 64, 64) and not cfg.use_residual
    assert NetworkConfig(3, 3).use_residual and not NetworkConfig(3, 3, residual=False).use_residual
    assert NetworkConfig(4, 3, residual=True).use_residual
    for bad in ({"size": "huge"}, {"in_channels": 0}, {"residual": True, "in_channels": 1}, {"bogus": 1}):
        with pytest.raises((ValueError, TypeError)):
            NetworkConfig.from_dict({**NetworkConfig(3, 3).to_dict(), **bad})


def test_residual_starts_near_identity():
    torch.manual_seed(0)
    net = build_network(NetworkConfig(3, 3, size="small")).eval()
    x = transfer.encode(torch.rand(1, 3, 48, 48) * 8 - 1)
    with torch.no_grad():
        assert (net(x) - x).abs().max() < 0.05
    # a non-residual model starts near zero instead
    net = tiny(3, 1)
    with torch.no_grad():
        assert net(x).abs().max() < 0.05


def test_gradients_reach_every_weight_and_learning_moves_the_loss():
    net = tiny(3, 3).train()
    x = torch.randn(2, 3, 32, 32)
    y = x * 0.5 + 0.1
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = multiscale_l1(net.forward_scales(x), net.pyramid(y))
        opt.zero_grad()
        loss.backward()
        if not losses:
            for name, p in net.named_parameters():
                assert p.grad is not None and torch.isfinite(p.grad).all(), name
                assert p.grad.abs().sum() > 0, name
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize("size", SIZES)
def test_flops_analytic_matches_pytorch_counter(size):
    cfg = NetworkConfig(3, 3, size=size)
    net = build_network(cfg)
    assert count_flops(net, 64, 32) == flops_per_pixel(cfg) * 64 * 32
    assert 1e6 < flops_per_pixel(NetworkConfig(3, 3)) < 4e6


def test_bf16_autocast_and_channels_last_on_cpu():
    net = tiny(4, 3).to(memory_format=torch.channels_last)
    x = torch.randn(2, 4, 24, 40).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(x)
    assert out.shape == ref.shape and torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.1


# -- transfer --------------------------------------------------------------------------------------
EPS = torch.finfo(torch.float32).eps
# up to 1e38: within a rounding of float32's largest value, exp() of the rounded code overflows to inf
floats = st.floats(min_value=-9.999999680285692e+37, max_value=9.999999680285692e+37, width=32)


@settings(max_examples=200, deadline=None)
@given(st.lists(floats, min_size=1, max_size=64))
def test_transfer_round_trip(values):
    x = torch.tensor(values, dtype=torch.float32)
    y = transfer.encode(x)
    back = transfer.decode(y)
    # decode turns the float32 rounding of y (absolute ~|y| eps) into a relative error ~|y| eps
    tol = 4 * EPS * (1 + y.abs()) * x.abs() + torch.finfo(torch.float32).tiny
    assert ((back - x).abs() <= tol).all()
    normal = x.abs() >= torch.finfo(torch.float32).tiny  # subnormals may flush to zero
    assert torch.equal(torch.sign(y[normal]), torch.sign(x[normal]))


def test_transfer_properties():
    x = torch.tensor([-1e6, -2.0, -0.5, 0.0, 0.18, 1.0, 16.0, 1e6, float("inf"), -float("inf")])
    y = transfer.encode(x)
    assert torch.all(y[1:] >= y[:-1]) or torch.all(torch.diff(y[:-2]) > 0)  # monotonic on finite
    assert torch.equal(transfer.decode(y)[-2:], x[-2:])  # infinities survive
    assert torch.isnan(transfer.decode(transfer.encode(torch.tensor(float("nan")))))
    assert torch.allclose(transfer.encode(torch.tensor([1e-4])), torch.tensor([1e-4]), rtol=1e-3)
    assert transfer.get("slog1p") == (transfer.encode, transfer.decode)
    with pytest.raises(ValueError):
        transfer.get("gamma")


@settings(max_examples=12, deadline=None)
@given(cin=st.integers(1, 5), cout=st.integers(1, 5), kernel=st.sampled_from([1, 3, 5, 7]),
       lstm=st.booleans(), scales=st.integers(1, 3), h=st.integers(1, 41), w=st.integers(1, 41),
       seed=st.integers(0, 2**16))
def test_space_to_depth_form_is_the_same_function(cin, cout, kernel, lstm, scales, h, w, seed):
    """The fast inference form (level 0 on 2x2 pixel blocks) computes what the network computes,
    for any kernel size, channel counts, image size, with and without the ConvLSTM; the original
    network is left untouched and shares its level-1/2 weights."""
    torch.manual_seed(seed)
    cfg = NetworkConfig(cin, cout, kernel=kernel, lstm=lstm, scales=scales,
                        residual=False if cin < cout else None, **TINY)
    net = build_network(cfg).double().eval()
    with torch.no_grad():
        for p in net.parameters():  # random weights everywhere (init leaves some near zero)
            p.normal_(0, 0.05)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fast = space_to_depth(net)
    assert isinstance(fast, SpaceToDepthNet) and fast.enc1 is net.enc1 and fast.lstm is net.lstm
    assert fast.stem.weight.shape[:2] == (4 * cfg.widths[0], 4 * (cin + cout))
    x = torch.randn(2, cin, h, w, dtype=torch.float64)
    with torch.no_grad():
        expect, got = net(x), fast(x)
    assert got.shape == expect.shape == (2, cout, h, w)
    scale = expect.abs().max().item() + 1.0
    assert (got - expect).abs().max().item() <= 1e-9 * scale
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())


def test_space_to_depth_rejects_layers_it_cannot_rewrite():
    from torch import nn

    from nodegraph.ml.network import _s2d_conv, _s2d_strided_conv, _s2d_transposed_conv

    with pytest.raises(ValueError, match="stride-2"):
        _s2d_transposed_conv(nn.ConvTranspose2d(4, 4, 3, stride=1))
    for conv in (nn.Conv2d(4, 4, 5, padding=1), nn.Conv2d(4, 4, 4, padding=2),
                 nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"),
                 nn.Conv2d(4, 4, 3, stride=2, padding=1)):
        with pytest.raises(ValueError, match="stride-1"):
            _s2d_conv(conv)
    with pytest.raises(ValueError, match="stride-2"):
        _s2d_strided_conv(nn.Conv2d(4, 4, 5, padding=2))
