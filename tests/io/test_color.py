"""nodegraph.color against OCIO's processors directly and against the sRGB formula."""

from __future__ import annotations

import numpy as np
import PyOpenColorIO as ocio
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nodegraph import color
from nodegraph.errors import KnobError, NodeGraphError


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 decoding, written out here as the reference."""
    v = v.astype(np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


@pytest.fixture(autouse=True)
def builtin_config(monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)


def test_resolves_nuke_names_in_builtin_config():
    assert color.resolve("linear") == "Linear Rec.709 (sRGB)"
    assert color.resolve("sRGB") == "sRGB Encoded Rec.709 (sRGB)"
    assert color.resolve("srgb") == "sRGB Encoded Rec.709 (sRGB)"
    assert color.resolve("rec709") == "Camera Rec.709"
    assert color.resolve("Gamma2.2") == "Gamma 2.2 Encoded Rec.709"
    assert color.resolve("raw") == "Raw"
    assert color.resolve("ACEScg") == "ACEScg"
    assert color.resolve("lin_srgb") == "Linear Rec.709 (sRGB)"  # alias
    assert color.resolve("scene_linear") == "ACEScg"  # role


def test_unknown_name_lists_valid_ones():
    with pytest.raises(KnobError) as err:
        color.resolve("NotASpace")
    message = str(err.value)
    assert "NotASpace" in message and "sRGB" in message and "ACEScg" in message
    assert isinstance(err.value, NodeGraphError)


def test_srgb_to_linear_matches_ocio_and_formula():
    g = torch.Generator().manual_seed(3)
    pixels = torch.rand((4, 16, 24), generator=g)
    out = color.convert(pixels, "sRGB", "linear")
    direct = ocio.Config.CreateFromBuiltinConfig("studio-config-latest").getProcessor(
        "sRGB Encoded Rec.709 (sRGB)", "Linear Rec.709 (sRGB)").getOptimizedCPUProcessor(color.PRECISE)
    packed = np.ascontiguousarray(pixels[:3].permute(1, 2, 0).numpy())
    direct.applyRGB(packed)
    assert torch.equal(out[:3], torch.from_numpy(packed).permute(2, 0, 1))
    assert np.allclose(out[:3].numpy(), srgb_to_linear(pixels[:3].numpy()), atol=2e-6)
    assert torch.equal(out[3], pixels[3])  # alpha untouched


def test_keeps_dtype_and_extra_channels():
    pixels = torch.rand((5, 4, 4)).half()
    out = color.convert(pixels, "linear", "sRGB")
    assert out.dtype == torch.float16 and out.shape == pixels.shape
    assert torch.equal(out[3:], pixels[3:])


def test_single_channel_is_grey():
    pixels = torch.full((1, 2, 2), 0.5)
    out = color.convert(pixels, "sRGB", "linear")
    assert out.shape == (1, 2, 2)
    assert out[0, 0, 0].item() == pytest.approx(srgb_to_linear(np.array(0.5)).item(), abs=1e-6)


def test_same_space_is_identity():
    pixels = torch.rand((3, 2, 2))
    assert color.convert(pixels, "linear", "lin_srgb") is pixels


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["sRGB", "rec709", "Gamma1.8", "Gamma2.2", "Gamma2.4", "ACEScct", "ACEScg"]),
       st.lists(st.floats(0.0, 1.0, width=32), min_size=3, max_size=3))
def test_round_trip(space, rgb):
    pixels = torch.tensor(rgb, dtype=torch.float32).reshape(3, 1, 1)
    there = color.convert(pixels, "linear", space)
    back = color.convert(there, space, "linear")
    assert torch.allclose(back, pixels, atol=1e-5)


def test_ocio_env_is_followed(tmp_path, monkeypatch):
    config = ocio.Config.CreateRaw()
    raw_text = config.serialize()
    path = tmp_path / "config.ocio"
    path.write_text(raw_text)
    monkeypatch.setenv("OCIO", str(path))
    assert color.get_config().getName() == config.getName()
    assert color.resolve("raw") == "raw"
    with pytest.raises(KnobError):
        color.resolve("ACEScg")
    monkeypatch.delenv("OCIO")
    assert color.resolve("ACEScg") == "ACEScg"


def test_bad_ocio_env(tmp_path, monkeypatch):
    monkeypatch.setenv("OCIO", str(tmp_path / "missing.ocio"))
    with pytest.raises(KnobError, match="OCIO config"):
        color.get_config()


@pytest.mark.parametrize("datatype, expected", [("uint8", "sRGB"), ("uint16", "sRGB"), ("half", "linear"),
                                                ("float", "linear"), ("uint32", "linear")])
def test_default_for_datatype(datatype, expected):
    assert color.default_for_datatype(datatype) == expected
