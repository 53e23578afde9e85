"""Arbitrary bytes and messages fed to the server's request handling and image decoding: always an
answer (an Error for anything malformed), never an exception escaping, never a model loaded by a
path; and the channel names of image prototypes read back as written."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodegraph.ml import infer
from nodegraph.serve import mlserver_pb2 as pb
from nodegraph.serve.protocol import (ProtocolError, channel_spec, encode_header, image_to_tensor, parse_header,
                                      spec_channels)

from servekit import inference_request, wire_image

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.binary(max_size=400))
def test_arbitrary_request_bytes_get_an_answer(server, data):
    loads = infer.model_cache.loads
    answer = server._handle(bytearray(data))
    assert isinstance(answer, pb.RespondWrapper)
    assert answer.HasField("error") or answer.HasField("r1") or answer.HasField("r2")
    assert infer.model_cache.loads <= loads + 1  # at most a served model, loaded once


@FUZZ
@given(name=st.text(max_size=40), width=st.integers(-3, 40), height=st.integers(-3, 40),
       channels=st.integers(-1, 5), extra=st.integers(-8, 8))
def test_arbitrary_inference_requests(server, name, width, height, channels, extra):
    image = pb.Image(width=width, height=height, channels=channels,
                     image=b"\0" * max(0, width * height * max(channels, 0) * 4 + extra))
    model = name if name else "Denoise"
    answer = server._handle(bytearray(request := inference_request(model, image=image).SerializeToString()))
    valid = (model == "Denoise" and width > 0 and height > 0 and channels == 3 and extra == 0)
    assert answer.HasField("error") != valid, (answer.error.msg, request)
    if valid:
        assert (answer.r2.images[0].width, answer.r2.images[0].height) == (width, height)


@FUZZ
@given(width=st.integers(1, 9), height=st.integers(1, 9), channels=st.integers(1, 4))
def test_image_round_trip(width, height, channels):
    x = torch.randn(channels, height, width)
    torch.testing.assert_close(image_to_tensor(wire_image(x)), x, rtol=0, atol=0)
    image = wire_image(x)
    first_row_on_the_wire = torch.frombuffer(bytearray(image.image[:4 * width]), dtype=torch.float32)
    torch.testing.assert_close(first_row_on_the_wire, x[0, -1])  # the bottom row travels first


@given(raw=st.binary(min_size=12, max_size=12))
def test_header_parsing(raw):
    if raw.isdigit():
        assert parse_header(raw) == int(raw) and encode_header(int(raw)) == raw
    else:
        with pytest.raises(ProtocolError):
            parse_header(raw)


@pytest.mark.parametrize("names, spec", [
    (("rgba.red", "rgba.green", "rgba.blue"), "rgb"),
    (("rgba.red", "rgba.green", "rgba.blue", "rgba.alpha"), "rgba"),
    (("rgba.alpha",), "alpha"),
    (("matte.alpha",), "matte.alpha"),
    (("rgba.red", "depth.Z", "forward.u"), "rgba.red,depth.Z,forward.u"),
])
def test_channel_names_in_prototypes(names, spec):
    assert channel_spec(names) == spec
    assert spec_channels(pb.ImagePrototype(name=spec, channels=len(names))) == names


def test_foundry_style_prototypes_by_channel_count():
    assert spec_channels(pb.ImagePrototype(name="image", channels=3)) == ("rgba.red", "rgba.green", "rgba.blue")
    assert spec_channels(pb.ImagePrototype(name="rgb", channels=1)) == ("rgba.alpha",)  # the count wins
    with pytest.raises(ProtocolError, match="5 channels"):
        spec_channels(pb.ImagePrototype(name="image", channels=5))
