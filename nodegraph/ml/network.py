"""The CopyCat network: a multi-scale recurrent encoder-decoder (scale-recurrent, after Tao et al.
2018, "Scale-recurrent Network for Deep Image Deblurring").

Structure, applied coarse-to-fine over ``scales`` (3) with the same weights at every scale:

- the input at that scale (a 2x2 box-filter pyramid of the padded input) is concatenated with
  the previous scale's prediction upsampled 2x (bilinear); at the coarsest scale the "previous
  prediction" is the input itself when input and output channels agree, zeros otherwise;
- encoder: a 5x5 stem conv to ``widths[0]`` channels, then three levels (``widths``, by default
  32/64/128) of 5x5 ResBlocks (conv-ReLU-conv + identity, no normalisation), levels joined by 5x5
  stride-2 convs;
- bottleneck: an optional ConvLSTM whose hidden and cell states are carried from one scale to
  the next (upsampled 2x, bilinear);
- decoder: 5x5 ResBlocks per level, 4x4 stride-2 transposed convs up, additive skip connections
  from the encoder level of the same size (additions, not concatenations: no copies, no wider
  convs), and a 5x5 head conv to the output channels;
- residual prediction when input and output channels agree (the network predicts a correction to
  the input at each scale).

Design choices (speed on GPU tensor cores with bf16 + channels_last + torch.compile):

- Block counts per level are *not* SRN's fixed 3+3 everywhere. Full-resolution convs at 32
  channels are the most expensive per weight (they run on the most pixels) and the least
  efficient on tensor cores (narrow GEMMs, memory bound); 128-channel convs at 1/4 resolution
  are cheap per weight and run near the matrix rate. The ``medium`` model therefore spends fewer
  blocks at full resolution and more of its ~7M weights at the low-resolution levels: fewer but
  wider ops, same family, similar weight count to CopyCat's default. Measured on an H200 (crop
  256, batch 16, bf16, compiled): 655 crops/s against 418 for the textbook SRN (3+3 blocks per
  level, 8.1M weights) and 453 for SRN without its ConvLSTM (6.9M), i.e. 1.57x / 1.45x, with
  fewer FLOPs (127 vs 180 GFLOP per 256^2 crop forward) and faster learning on a
  blur+grade task in a short test.
- ``small`` keeps 32 channels at full resolution rather than halving every width: 16-channel
  convs fall off Hopper's wgmma kernels onto slow narrow ones, so a 16/32/64 network was no
  faster than 32/64/64 with fewer blocks (1.9M weights, about 1.5x medium's crops/s).
  ``large`` widens to 48/96/192 (17.9M weights).
- The ConvLSTM uses 3x3 gates (one conv over ``[x, h]`` producing all four gates at once); at
  the coarsest scale, where the state is zero, only the input half of the gate weights is applied
  (no concatenation with zeros, no forget-gate term).
- Skips are additions; the input pyramid is a 2x2 average pool (cheap, exact box filter, matches
  the target pyramid used by the multi-scale loss, see :meth:`ScaleRecurrentNet.pyramid`).
- No Python-side per-pixel work, no data-dependent control flow: padding depends on the shape
  only, so ``torch.compile`` traces the whole multi-scale forward as one graph.
- Initialisation: PyTorch's default (Kaiming-uniform) convs, the second conv of every ResBlock
  scaled by ``RES_INIT_SCALE`` so deep stacks start close to identity, and the head scaled by
  ``HEAD_INIT_SCALE`` so that a residual model starts near the identity map while gradients still
  reach every layer at the first step (a zero head would block them).

Inputs of any size are padded (replicate) on the right/bottom to a multiple of
``2 ** (scales - 1 + 2)`` and the predictions cropped back. Values are in the encoded
(:mod:`nodegraph.ml.transfer`) domain: the network sees and predicts encoded values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

SIZES = ("small", "medium", "large")

RES_INIT_SCALE = 0.1
#: Sanity bounds on a config (a model file is read from anywhere: a config claiming a million scales
#: or widths would hang or exhaust memory before anything else could object).
MAX_SCALES = 8
MAX_WIDTH = 4096
MAX_BLOCKS = 64
MAX_KERNEL = 15
MAX_IO_CHANNELS = 1024
HEAD_INIT_SCALE = 1e-2

# Per size: channel widths of the three levels and ResBlocks per level in the encoder and decoder.
_SIZE_SPECS: dict[str, dict[str, Any]] = {
    "small": {"widths": (32, 64, 64), "enc_blocks": (1, 1, 2), "dec_blocks": (1, 1, 2)},
    "medium": {"widths": (32, 64, 128), "enc_blocks": (1, 2, 3), "dec_blocks": (1, 2, 3)},
    "large": {"widths": (48, 96, 192), "enc_blocks": (2, 3, 3), "dec_blocks": (2, 3, 3)},
}


@dataclass
class NetworkConfig:
    """Everything needed to rebuild a network exactly (saved in the model file as JSON).

    ``widths``, ``enc_blocks``, ``dec_blocks`` default from ``size``; ``residual=None`` means
    residual prediction when ``in_channels == out_channels``.
    """

    in_channels: int
    out_channels: int
    size: str = "medium"
    scales: int = 3
    lstm: bool = True
    residual: bool | None = None
    widths: tuple[int, int, int] | None = None
    enc_blocks: tuple[int, int, int] | None = None
    dec_blocks: tuple[int, int, int] | None = None
    kernel: int = 5
    lstm_kernel: int = 3

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {SIZES}, not {self.size!r}")
        spec = _SIZE_SPECS[self.size]
        for name in ("widths", "enc_blocks", "dec_blocks"):
            value = getattr(self, name)
            value = spec[name] if value is None else value
            value = tuple(int(v) for v in value)
            if len(value) != 3:
                raise ValueError(f"{name} must have 3 entries (one per level), not {value}")
            setattr(self, name, value)
        if int(self.in_channels) < 1 or int(self.out_channels) < 1:
            raise ValueError("in_channels and out_channels must be >= 1")
        self.in_channels, self.out_channels = int(self.in_channels), int(self.out_channels)
        if max(self.in_channels, self.out_channels) > MAX_IO_CHANNELS:
            raise ValueError(f"in_channels and out_channels must be at most {MAX_IO_CHANNELS} (limit MAX_IO_CHANNELS)")
        if not 1 <= int(self.scales) <= MAX_SCALES:
            raise ValueError(f"scales must be 1..{MAX_SCALES} (limit MAX_SCALES), not {self.scales}")
        self.scales = int(self.scales)
        if min(self.widths) < 1 or min(self.enc_blocks + self.dec_blocks) < 0:
            raise ValueError("widths must be >= 1 and block counts >= 0")
        if max(self.widths) > MAX_WIDTH:
            raise ValueError(f"widths must be at most {MAX_WIDTH} (limit MAX_WIDTH), not {list(self.widths)}")
        if max(self.enc_blocks + self.dec_blocks) > MAX_BLOCKS:
            raise ValueError(f"block counts must be at most {MAX_BLOCKS} (limit MAX_BLOCKS)")
        self.kernel, self.lstm_kernel = int(self.kernel), int(self.lstm_kernel)
        if self.kernel % 2 != 1 or self.lstm_kernel % 2 != 1:
            raise ValueError("kernel sizes must be odd")
        if not (1 <= self.kernel <= MAX_KERNEL and 1 <= self.lstm_kernel <= MAX_KERNEL):
            raise ValueError(f"kernel sizes must be 1..{MAX_KERNEL} (limit MAX_KERNEL)")
        if self.residual and self.in_channels < self.out_channels:
            raise ValueError("residual prediction needs in_channels >= out_channels")

    @property
    def use_residual(self) -> bool:
        """Whether the network predicts a correction to the first ``out_channels`` inputs."""
        return self.in_channels == self.out_channels if self.residual is None else bool(self.residual)

    @property
    def pad_multiple(self) -> int:
        """Inputs are padded to a multiple of this (pyramid halvings x two encoder strides)."""
        return 2 ** (self.scales - 1 + 2)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for name in ("widths", "enc_blocks", "dec_blocks"):
            d[name] = list(d[name])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NetworkConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown network config keys: {sorted(unknown)}")
        try:
            return cls(**d)
        except OverflowError as err:  # int(inf) from a JSON 1e400
            raise ValueError(f"a number is out of range: {err}") from None


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


class ResBlock(nn.Module):
    """conv-ReLU-conv plus identity (SRN's ResBlock: no normalisation, no activation after)."""

    def __init__(self, channels: int, k: int) -> None:
        super().__init__()
        self.conv1 = _conv(channels, channels, k)
        self.conv2 = _conv(channels, channels, k)
        with torch.no_grad():
            self.conv2.weight.mul_(RES_INIT_SCALE)
            self.conv2.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class ConvLSTM(nn.Module):
    """A ConvLSTM cell: one conv over ``[x, h]`` to the i, f, g, o gates."""

    def __init__(self, channels: int, k: int) -> None:
        super().__init__()
        self.channels = channels
        self.k = k
        self.gates = nn.Conv2d(2 * channels, 4 * channels, k, padding=k // 2)
        with torch.no_grad():  # forget-gate bias 1: remember the coarser scale's state at first
            self.gates.bias.zero_()
            self.gates.bias[channels:2 * channels].fill_(1.0)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        c_ = self.channels
        if state is None:  # zero state: apply only the input half of the weights
            z = F.conv2d(x, self.gates.weight[:, :c_], self.gates.bias, padding=self.k // 2)
            i, _f, g, o = z.chunk(4, dim=1)
            c = torch.sigmoid(i) * torch.tanh(g)
        else:
            h, c = state
            z = self.gates(torch.cat([x, h], dim=1))
            i, f, g, o = z.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


def _blocks(channels: int, n: int, k: int) -> nn.Sequential:
    return nn.Sequential(*[ResBlock(channels, k) for _ in range(n)])


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class ScaleRecurrentNet(nn.Module):
    """The network; see the module docstring. Build with :func:`build_network`."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        cfg = config
        k = cfg.kernel
        c0, c1, c2 = cfg.widths
        e0, e1, e2 = cfg.enc_blocks
        d0, d1, d2 = cfg.dec_blocks
        self.stem = _conv(cfg.in_channels + cfg.out_channels, c0, k)
        self.enc0 = _blocks(c0, e0, k)
        self.down1 = _conv(c0, c1, k, stride=2)
        self.enc1 = _blocks(c1, e1, k)
        self.down2 = _conv(c1, c2, k, stride=2)
        self.enc2 = _blocks(c2, e2, k)
        self.lstm = ConvLSTM(c2, cfg.lstm_kernel) if cfg.lstm else None
        self.dec2 = _blocks(c2, d2, k)
        self.up1 = nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1)
        self.dec1 = _blocks(c1, d1, k)
        self.up0 = nn.ConvTranspose2d(c1, c0, 4, stride=2, padding=1)
        self.dec0 = _blocks(c0, d0, k)
        self.head = _conv(c0, cfg.out_channels, k)
        with torch.no_grad():
            self.head.weight.mul_(HEAD_INIT_SCALE)
            self.head.bias.zero_()

    # -- one scale -----------------------------------------------------------------------------
    def _to_level0(self, x: torch.Tensor) -> torch.Tensor:
        """The scale's input in the layout the level-0 layers work in (here: as it is)."""
        return x

    def _from_level0(self, y: torch.Tensor) -> torch.Tensor:
        """The head's output back to an image (here: as it is)."""
        return y

    def _step(self, x: torch.Tensor, state):
        s0 = self.enc0(F.relu(self.stem(self._to_level0(x))))
        s1 = self.enc1(F.relu(self.down1(s0)))
        b = self.enc2(F.relu(self.down2(s1)))
        if self.lstm is not None:
            b, state = self.lstm(b, state)
        b = self.dec2(b)
        u1 = self.dec1(F.relu(self.up1(b)) + s1)
        u0 = self.dec0(F.relu(self.up0(u1)) + s0)
        return self._from_level0(self.head(u0)), state

    # -- padding and pyramids ------------------------------------------------------------------
    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        m = self.config.pad_multiple
        h, w = x.shape[-2:]
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return x

    def _sizes(self, h: int, w: int) -> list[tuple[int, int]]:
        """Prediction sizes, coarse-to-fine: ``ceil(size / 2**k)`` at downsampling ``2**k``."""
        n = self.config.scales
        return [(-(-h // 2 ** k), -(-w // 2 ** k)) for k in range(n - 1, -1, -1)]

    def _padded_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = [self._pad(x)]
        for _ in range(self.config.scales - 1):
            levels.append(F.avg_pool2d(levels[-1], 2))
        return levels[::-1]

    def pyramid(self, y: torch.Tensor) -> list[torch.Tensor]:
        """The targets of :meth:`forward_scales` for an image ``y`` ``[N, C, H, W]``: the same
        box-filter pyramid (of the padded image), coarse-to-fine, cropped to the same sizes."""
        sizes = self._sizes(*y.shape[-2:])
        return [lvl[..., :h, :w] for lvl, (h, w) in zip(self._padded_pyramid(y), sizes)]

    # -- forward -------------------------------------------------------------------------------
    def forward_scales(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Predictions coarse-to-fine, each ``[N, Cout, ceil(H/2**k), ceil(W/2**k)]``."""
        cfg = self.config
        sizes = self._sizes(*x.shape[-2:])
        levels = self._padded_pyramid(x)
        cout = cfg.out_channels
        same = cfg.in_channels == cfg.out_channels
        residual = cfg.use_residual
        preds: list[torch.Tensor] = []
        pred: torch.Tensor | None = None
        state = None
        for xs, (h, w) in zip(levels, sizes):
            if pred is None:
                prev = xs if same else xs.new_zeros(xs.shape[0], cout, *xs.shape[-2:])
            else:
                prev = _up2(pred)
                if state is not None:
                    state = (_up2(state[0]), _up2(state[1]))
            out, state = self._step(torch.cat([xs, prev.to(xs.dtype)], dim=1), state)
            pred = out + xs[:, :cout] if residual else out
            preds.append(pred[..., :h, :w])
        return preds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The finest-scale prediction ``[N, Cout, H, W]``."""
        return self.forward_scales(x)[-1]


def build_network(config: NetworkConfig) -> ScaleRecurrentNet:
    """A freshly initialised network for ``config``."""
    return ScaleRecurrentNet(config)


# --- the same network in space-to-depth form (fast inference) -------------------------------------
#
# Level 0 (full resolution at ``widths[0]`` channels, 32 by default) is the slowest part of the
# network on GPU tensor cores: a 5x5 conv with 32 output channels is a narrow implicit GEMM that is
# bound by operand loads, not by the matrix units (measured on an H100 at HD: ~240 TFLOP/s against
# ~570 for the 128-channel convs of level 2). Rewritten on 2x2 pixel blocks ("space to depth",
# ``F.pixel_unshuffle``), the same layers become 3x3 convs with 4x the channels at half the
# resolution: the same function (every output is the same sum of the same products, plus exact
# zeros), with 1.44x the multiply-adds but on wide GEMMs that run near the matrix rate. Measured
# through the Inference node (medium, HD, half, compiled, H100): 73.6 -> 85.7 frames/s; eager
# 47.9 -> 57.7 (benchmarks/inference_profile.py). Only the weights are rearranged; the model file
# is unchanged. Training on CUDA uses the tied form (``space_to_depth(net, tied=True)``), which
# gathers the rearranged weights from the network's own parameters at every call (its backward a
# gather too: see :class:`_TiedGather`).

def _tap_radius(taps: list[int]) -> int:
    return max(max(taps), -min(taps), 0)


def _check_conv(conv: nn.Conv2d, stride: int) -> None:
    k = conv.kernel_size[0]
    if conv.kernel_size != (k, k) or k % 2 != 1 or conv.stride != (stride, stride) \
            or conv.padding != (k // 2, k // 2) or conv.dilation != (1, 1) or conv.groups != 1 \
            or conv.bias is None or conv.padding_mode != "zeros":
        raise ValueError(f"only square odd-kernel stride-{stride} convs with 'same' zero padding and a "
                         f"bias are supported, not {conv}")


def _s2d_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """A stride-1 ``k x k`` conv (padding ``k // 2``) as a conv on space-to-depth images:
    ``[N, 4C, H/2, W/2] -> [N, 4Cout, H/2, W/2]``, output channel ``co * 4 + 2 * py + px``."""
    _check_conv(conv, 1)
    w = conv.weight.detach()
    cout, cin, k, _ = w.shape
    r = k // 2
    # output phase p, input phase q, block offset a: full-resolution tap t = 2a + q - p
    entries = [(p, q, a, 2 * a + q - p) for p in (0, 1) for q in (0, 1) for a in range(-r, r + 2)
               if -r <= 2 * a + q - p <= r]
    big = _tap_radius([a for _, _, a, _ in entries])
    out = nn.Conv2d(4 * cin, 4 * cout, 2 * big + 1, padding=big).to(w.device, w.dtype)
    weight = torch.zeros_like(out.weight)
    for py, qy, ay, ty in entries:
        for px, qx, ax, tx in entries:
            weight[2 * py + px::4, 2 * qy + qx::4, ay + big, ax + big] = w[:, :, ty + r, tx + r]
    with torch.no_grad():
        out.weight.copy_(weight)
        out.bias.copy_(conv.bias.detach().repeat_interleave(4))
    return out


def _s2d_strided_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """A stride-2 ``k x k`` conv (padding ``k // 2``) reading a space-to-depth image: a stride-1
    conv ``[N, 4C, H/2, W/2] -> [N, Cout, H/2, W/2]`` (input phase q, block offset a: tap 2a + q)."""
    _check_conv(conv, 2)
    w = conv.weight.detach()
    cout, cin, k, _ = w.shape
    r = k // 2
    entries = [(q, a, 2 * a + q) for q in (0, 1) for a in range(-r, r + 1) if -r <= 2 * a + q <= r]
    big = _tap_radius([a for _, a, _ in entries])
    out = nn.Conv2d(4 * cin, cout, 2 * big + 1, padding=big).to(w.device, w.dtype)
    weight = torch.zeros_like(out.weight)
    for qy, ay, ty in entries:
        for qx, ax, tx in entries:
            weight[:, 2 * qy + qx::4, ay + big, ax + big] = w[:, :, ty + r, tx + r]
    with torch.no_grad():
        out.weight.copy_(weight)
        out.bias.copy_(conv.bias.detach())
    return out


def _s2d_transposed_conv(conv: nn.ConvTranspose2d) -> nn.Conv2d:
    """A stride-2 transposed conv writing a space-to-depth image: a stride-1 conv
    ``[N, C, H, W] -> [N, 4Cout, H, W]`` (output phase p, input offset d: tap p + padding - 2d)."""
    w = conv.weight.detach()  # [Cin, Cout, K, K]
    cin, cout, k, _ = w.shape
    pad = conv.padding[0]
    if conv.stride != (2, 2) or conv.padding[0] != conv.padding[1] or conv.output_padding != (0, 0) \
            or conv.dilation != (1, 1) or conv.groups != 1 or conv.kernel_size != (k, k) or conv.bias is None:
        raise ValueError("only square stride-2 transposed convs without output padding are supported")
    entries = [(p, d, p + pad - 2 * d) for p in (0, 1) for d in range(-k, k + 1) if 0 <= p + pad - 2 * d < k]
    big = _tap_radius([d for _, d, _ in entries])
    out = nn.Conv2d(cin, 4 * cout, 2 * big + 1, padding=big).to(w.device, w.dtype)
    weight = torch.zeros_like(out.weight)
    for py, dy, ty in entries:
        for px, dx, tx in entries:
            weight[2 * py + px::4, :, dy + big, dx + big] = w[:, :, ty, tx].T
    with torch.no_grad():
        out.weight.copy_(weight)
        out.bias.copy_(conv.bias.detach().repeat_interleave(4))
    return out


def _s2d_blocks(blocks: nn.Sequential) -> nn.Sequential:
    converted = []
    for block in blocks:
        new = ResBlock.__new__(ResBlock)
        nn.Module.__init__(new)
        new.conv1, new.conv2 = _s2d_conv(block.conv1), _s2d_conv(block.conv2)
        converted.append(new)
    return nn.Sequential(*converted)


def _inverse_index(index: torch.Tensor, n: int) -> torch.Tensor:
    """For a gather ``out = src[index]`` from ``n`` sources: ``[n, m]`` positions in ``out`` (flat)
    of each source, padded with ``index.numel()`` (a slot that holds zero)."""
    flat = index.reshape(-1)
    keep = flat < n
    pos = torch.arange(flat.numel())[keep]
    src = flat[keep]
    order = torch.argsort(src, stable=True)
    pos, src = pos[order], src[order]
    counts = torch.bincount(src, minlength=n)
    m = int(counts.max()) if counts.numel() else 0
    first = torch.cumsum(counts, 0) - counts
    slot = torch.arange(src.numel()) - first[src]
    inverse = torch.full((n, max(1, m)), flat.numel(), dtype=torch.long)
    inverse[src, slot] = pos
    return inverse


class _TiedGather(torch.autograd.Function):
    """``cat([src.flatten(), 0])[index]`` whose backward is a gather and a sum (through the inverse
    index) instead of autograd's scatter-add: PyTorch's deterministic ``index_put_(accumulate=True)``
    sorts the indices at every call, and measured in the eager training loop on an H200 it took 70% of
    the step (1.4 ms per call, 48 calls per step)."""

    @staticmethod
    def forward(src: torch.Tensor, index: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
        return torch.cat([src.reshape(-1), src.new_zeros(1)])[index]

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        src, _, inverse = inputs
        ctx.save_for_backward(inverse)
        ctx.shape = src.shape

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (inverse,) = ctx.saved_tensors
        flat = torch.cat([grad.reshape(-1), grad.new_zeros(1)])
        return flat[inverse].sum(-1).view(ctx.shape), None, None


class _TiedS2DConv(nn.Module):
    """A level-0 layer in space-to-depth form whose weights are gathered, at every call, from the
    original layer's parameters (kept as ``source``): gradients reach the original weights, so a
    network trains in this form and saves in its own. The gather is one small indexing op per
    layer (:class:`_TiedGather`: its backward gathers too); the zeros of the rewritten kernel stay
    exact zeros."""

    def __init__(self, source: nn.Conv2d | nn.ConvTranspose2d, rewrite) -> None:
        super().__init__()
        self.source = source
        # the rewrite applied to weights 1..n (float64: exact) gives each entry's source index + 1
        w = source.weight
        probe = type(source)(source.in_channels, source.out_channels, source.kernel_size, stride=source.stride,
                             padding=source.padding, device="cpu", dtype=torch.float64)
        n_bias = w.shape[1 if isinstance(source, nn.ConvTranspose2d) else 0]
        with torch.no_grad():
            probe.weight.copy_(torch.arange(1, w.numel() + 1, dtype=torch.float64).view_as(probe.weight))
            probe.bias.copy_(torch.arange(1, n_bias + 1, dtype=torch.float64))
        fast = rewrite(probe)
        index = fast.weight.detach().round().long() - 1
        index[index < 0] = w.numel()  # the appended zero
        bias_index = fast.bias.detach().round().long().sub(1)
        for name, idx, n in (("index", index, w.numel()), ("bias_index", bias_index, n_bias)):
            self.register_buffer(name, idx.to(w.device), persistent=False)
            self.register_buffer(f"{name}_inverse", _inverse_index(idx, n).to(w.device), persistent=False)
        self.padding = fast.padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = _TiedGather.apply(self.source.weight, self.index, self.index_inverse)
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            weight = weight.contiguous(memory_format=torch.channels_last)
        bias = _TiedGather.apply(self.source.bias, self.bias_index, self.bias_index_inverse)
        return F.conv2d(x, weight, bias, padding=self.padding)


class SpaceToDepthNet(ScaleRecurrentNet):
    """A :class:`ScaleRecurrentNet` whose level-0 layers run on 2x2 pixel blocks (see above).
    Built by :func:`space_to_depth`: for inference with rewritten weights (its state dict is not a
    model file's), or for training with weights tied to the original network (``tied=True``)."""

    def _to_level0(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(x, 2)

    def _from_level0(self, y: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(y, 2)


def _tied_blocks(blocks: nn.Sequential) -> nn.Sequential:
    converted = []
    for block in blocks:
        new = ResBlock.__new__(ResBlock)
        nn.Module.__init__(new)
        new.conv1, new.conv2 = _TiedS2DConv(block.conv1, _s2d_conv), _TiedS2DConv(block.conv2, _s2d_conv)
        converted.append(new)
    return nn.Sequential(*converted)


def space_to_depth(net: ScaleRecurrentNet, *, tied: bool = False) -> SpaceToDepthNet:
    """The same function as ``net`` (up to float rounding) computed in space-to-depth form at
    level 0; levels 1 and 2 and the ConvLSTM share ``net``'s modules.

    ``tied=False`` (fast GPU inference): level 0 gets rewritten copies of the weights, made once.
    ``tied=True`` (training): level 0 gathers its weights from ``net``'s parameters at every call,
    so optimising the returned module's parameters (the same tensors as ``net``'s) trains ``net``."""
    net = getattr(net, "_orig_mod", net)
    fast = SpaceToDepthNet.__new__(SpaceToDepthNet)
    nn.Module.__init__(fast)
    fast.config = net.config
    fast.lstm = None
    for name, module in net.named_children():
        setattr(fast, name, module)
    if tied:
        fast.stem = _TiedS2DConv(net.stem, _s2d_conv)
        fast.enc0 = _tied_blocks(net.enc0)
        fast.down1 = _TiedS2DConv(net.down1, _s2d_strided_conv)
        fast.up0 = _TiedS2DConv(net.up0, _s2d_transposed_conv)
        fast.dec0 = _tied_blocks(net.dec0)
        fast.head = _TiedS2DConv(net.head, _s2d_conv)
        return fast.train(net.training)
    with torch.no_grad():
        fast.stem = _s2d_conv(net.stem)
        fast.enc0 = _s2d_blocks(net.enc0)
        fast.down1 = _s2d_strided_conv(net.down1)
        fast.up0 = _s2d_transposed_conv(net.up0)
        fast.dec0 = _s2d_blocks(net.dec0)
        fast.head = _s2d_conv(net.head)
    return fast.train(net.training)


def multiscale_l1(preds: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    """Mean over scales of the L1 loss (inputs in the encoded domain), computed in float32."""
    losses = [F.l1_loss(p.float(), t.float()) for p, t in zip(preds, targets, strict=True)]
    return torch.stack(losses).mean()


def count_parameters(module: nn.Module) -> int:
    """Number of trainable weights (compiled modules are unwrapped)."""
    module = getattr(module, "_orig_mod", module)
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def flops_per_pixel(config: NetworkConfig) -> float:
    """Forward FLOPs (2 x multiply-adds of the convs; biases and element-wise ops not counted)
    per input pixel, for images whose sides are multiples of ``config.pad_multiple``."""
    cfg = config
    k2 = cfg.kernel ** 2
    c0, c1, c2 = cfg.widths
    e0, e1, e2 = cfg.enc_blocks
    d0, d1, d2 = cfg.dec_blocks
    # multiply-adds per pixel of each level's resolution (level 0 = the scale's resolution)
    lvl0 = k2 * (cfg.in_channels + cfg.out_channels) * c0 + (e0 + d0) * 2 * k2 * c0 * c0 \
        + 4 * c1 * c0 + k2 * c0 * cfg.out_channels  # up0: a 4x4 stride-2 transposed conv is 4 taps per output
    lvl1 = k2 * c0 * c1 + (e1 + d1) * 2 * k2 * c1 * c1 + 4 * c2 * c1
    lvl2 = k2 * c1 * c2 + (e2 + d2) * 2 * k2 * c2 * c2
    lk2 = cfg.lstm_kernel ** 2
    total = 0.0
    for s in range(cfg.scales):  # s = 0 coarsest
        frac = 4.0 ** -(cfg.scales - 1 - s)
        macs = lvl0 + lvl1 / 4 + lvl2 / 16
        if cfg.lstm:
            macs += lk2 * (c2 if s == 0 else 2 * c2) * 4 * c2 / 16
        total += frac * macs
    return 2.0 * total


def count_flops(module: nn.Module, h: int, w: int, batch: int = 1) -> int:
    """Forward FLOPs of ``module`` on a ``[batch, Cin, h, w]`` input, counted by PyTorch's
    ``FlopCounterMode`` (convolutions and matmuls) on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    module = getattr(module, "_orig_mod", module)
    cfg = module.config
    meta = build_network(cfg).to("meta")
    x = torch.zeros(batch, cfg.in_channels, h, w, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(x)
    return int(counter.get_total_flops())


__all__ = ["SIZES", "NetworkConfig", "ScaleRecurrentNet", "SpaceToDepthNet", "space_to_depth", "build_network", "multiscale_l1",
           "count_parameters", "flops_per_pixel", "count_flops"]
