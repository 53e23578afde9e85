"""The server against a raw client written from the protocol: info, inference, options, framing,
and every kind of bad request answered with an Error while the server keeps serving."""

from __future__ import annotations

import socket
import time

import pytest
import torch

from nodegraph.ml import infer
from nodegraph.serve import mlserver_pb2 as pb

from servekit import (IO_TIMEOUT, error_of, exchange, from_wire, inference_request, info, local, parse_answer,
                      request_bytes, run, send, tiny_cat, wire_image)


DEFAULTS = {"strength": 0.5, "steps": 2, "invert": False, "mode": "fast", "offset": [0.0, 0.0]}


def pixels(c=3, h=40, w=56, seed=1):
    torch.manual_seed(seed)
    return torch.rand(c, h, w) * 2


def still_serves(server, models: int = 2, size=(40, 56)) -> None:
    """After a bad request: an info request and an inference still get right answers."""
    assert info(server.address).r1.num_models == models
    x = pixels(3, *size, seed=9)
    torch.testing.assert_close(run(server.address, "Matte", x), local(server.catalog.get("Matte").path, x))


# --- info -----------------------------------------------------------------------------------------

def test_info_lists_models_channels_and_options(server):
    answer = info(server.address)
    assert not answer.HasField("error")
    models = {m.name: m for m in answer.r1.models}
    assert answer.r1.num_models == len(models) == 2
    d, m = models["Denoise"], models["Matte"]
    assert [(p.name, p.channels) for p in d.inputs] == [("rgb", 3)]
    assert [(p.name, p.channels) for p in m.outputs] == [("matte.alpha", 1)]
    assert d.label and m.label
    assert [(o.name, list(o.values)) for o in d.bool_options] == [("invert", [False])]
    assert [(o.name, list(o.values)) for o in d.int_options] == [("steps", [2])]
    assert [(o.name, list(o.values)) for o in d.float_options] == [("strength", [0.5]), ("offset", [0.0, 0.0])]
    assert [(o.name, o.value, list(o.choices)) for o in d.mc_options] == [("mode", "fast", ["fast", "best"])]
    # Foundry's MLClient forwards string options but not multiple-choice ones: enums are both
    assert [(o.name, list(o.values)) for o in d.string_options] == [("mode", ["fast"])]
    assert not m.bool_options and not m.string_options and not m.mc_options


def test_info_sees_models_added_later(server, model_dir):
    tiny_cat(model_dir / "Later.cat", seed=7)
    assert "Later" in {m.name for m in info(server.address).r1.models}


# --- inference ------------------------------------------------------------------------------------

def test_inference_equals_local_and_rows_travel_bottom_up(server):
    x = pixels()
    y = run(server.address, "Denoise", x)
    path = server.catalog.get("Denoise").path
    expect = local(path, x)
    torch.testing.assert_close(y, expect, atol=1e-5, rtol=1e-5)
    assert (y - x).abs().max() > 1e-2  # the model did something
    # had the server not turned the rows over, the network would have seen the image upside down
    upside_down = local(path, x.flip(-2)).flip(-2)
    assert (y - upside_down).abs().max() > 1e-3


def test_answer_framing_counts_header_and_connection_closes(server):
    raw = send(server.address, request_bytes(inference_request("Matte", pixels())), half_close=False)
    answer = parse_answer(raw)  # checks length == 12 + message and that the server closed (recv hit EOF)
    assert answer.r2.num_images == 1 and answer.r2.images[0].channels == 1
    assert (answer.r2.images[0].width, answer.r2.images[0].height) == (56, 40)


@pytest.fixture
def seen(monkeypatch) -> list[dict]:
    """The knob values of every run of the server's worker, in order."""
    out: list[dict] = []
    real = infer.infer_frames
    monkeypatch.setattr(infer, "infer_frames", lambda path, x, s, **kw: out.append(dict(s.knob_values))
                        or real(path, x, s, **kw))
    return out


def test_options_reach_the_model(model_dir, start_server, seen):
    server = start_server(model_dir)
    run(server.address, "Denoise", pixels(), strength=0.1, steps=5, invert=True, mode="best", offset=[1.5, -2.0])
    run(server.address, "Denoise", pixels())
    assert seen[0] == {"strength": 0.1, "steps": 5, "invert": True, "mode": "best", "offset": [1.5, -2.0]}
    assert seen[1] == DEFAULTS


def test_multiple_choice_option_and_one_value_for_xy(model_dir, start_server, seen):
    server = start_server(model_dir)
    message = inference_request("Denoise", pixels(), offset=[0.25])
    message.r2.model.mc_options.add(name="mode", value="best", choices=["fast", "best"])
    assert not exchange(server.address, message).HasField("error")
    assert seen[0] == {**DEFAULTS, "offset": [0.25, 0.25], "mode": "best"}


# --- bad requests: an Error answer, and the server goes on ------------------------------------------

@pytest.mark.parametrize("options, words", [
    ({"strength": 1.5}, ["strength", "range"]),
    ({"strength": True}, ["strength", "float"]),
    ({"steps": 0.5}, ["steps", "int knob"]),
    ({"mode": "slow"}, ["mode", "fast, best"]),
    ({"gain": 2.0}, ["no option 'gain'", "strength"]),
    ({"offset": [1.0, 2.0, 3.0]}, ["offset", "2 values"]),
])
def test_bad_option_values(server, options, words):
    msg = error_of(exchange(server.address, inference_request("Denoise", pixels(), **options)))
    for word in words:
        assert word in msg, msg
    still_serves(server)


def test_float_option_at_its_bound_despite_float32(tmp_path, start_server):
    """0.3 in float32 is 0.30000001192...: a knob whose max is 0.3 must still accept it."""
    folder = tmp_path / "m"
    folder.mkdir()
    tiny_cat(folder / "M.cat", knobs=[{"name": "k", "type": "float", "default": 0.0, "min": 0, "max": 0.3}])
    server = start_server(folder)
    assert run(server.address, "M", pixels(), k=0.3).shape == (3, 40, 56)
    assert "range" in error_of(exchange(server.address, inference_request("M", pixels(), k=0.3001)))


@pytest.mark.parametrize("case", ["unknown", "path", "absolute"])
def test_unknown_model_and_paths_are_never_loaded(server, tmp_path, case):
    outside = tiny_cat(tmp_path / "outside.cat", seed=4)
    name = {"unknown": "Nope", "path": "../outside", "absolute": str(outside)}[case]
    loads = infer.model_cache.loads
    msg = error_of(exchange(server.address, inference_request(name, pixels())))
    assert "no model named" in msg and "Denoise" in msg and "Matte" in msg
    assert infer.model_cache.loads == loads
    still_serves(server)


@pytest.mark.parametrize("case", ["bytes", "channels", "zero", "missing"])
def test_wrong_image_size(server, case):
    image = wire_image(pixels())
    if case == "bytes":
        image.image = image.image[:-4]
    elif case == "channels":
        image = wire_image(pixels(c=4))
    elif case == "zero":
        image.width = 0
    else:
        image.ClearField("height")
    msg = error_of(exchange(server.address, inference_request("Denoise", image=image)))
    assert {"bytes": "bytes", "channels": "takes 3", "zero": "positive", "missing": "no height"}[case] in msg
    still_serves(server)


def test_two_images_for_a_one_input_model(server):
    message = inference_request("Denoise", pixels())
    message.r2.images.append(wire_image(pixels()))
    assert "one image" in error_of(exchange(server.address, message))


def test_too_many_pixels(model_dir, start_server):
    server = start_server(model_dir, max_pixels=1000)
    assert "limit" in error_of(exchange(server.address, inference_request("Denoise", pixels())))


@pytest.mark.parametrize("payload, words", [
    (b"hello world!", "malformed length header"),
    (b"-00000000010" + b"x" * 10, "malformed length header"),
    (b"000000000100" + b"\x08\x01", "truncated"),
    (b"000000000000", "1 to"),
    (b"999999999999", "1 to"),
    (b"000000000005" + b"\xff\xff\xff\xff\xff", "not a serialized"),
    (b"000000000002" + b"\x08\x01", "neither"),
    (b"0000", "truncated length header"),
])
def test_garbage_framing_and_messages(server, payload, words):
    raw = send(server.address, payload)  # half-closed after: the connection still takes the answer
    assert words in error_of(parse_answer(raw))
    still_serves(server)


def test_request_larger_than_the_limit_is_refused_unread(model_dir, start_server):
    server = start_server(model_dir, max_message_bytes=10_000)
    body = request_bytes(inference_request("Denoise", pixels()))
    assert len(body) > 10_000
    with socket.create_connection(server.address, timeout=IO_TIMEOUT) as sock:
        sock.sendall(body[:12])  # the header alone: the server must answer without waiting for the rest
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    assert "10,000" in error_of(parse_answer(raw))
    still_serves(server, size=(16, 16))


def test_idle_client_is_timed_out(model_dir, start_server):
    server = start_server(model_dir, idle_timeout=0.3)
    with socket.create_connection(server.address, timeout=IO_TIMEOUT) as silent, \
            socket.create_connection(server.address, timeout=IO_TIMEOUT) as slow:
        slow.sendall(b"00000000")  # part of a header, then nothing
        t0 = time.monotonic()
        assert silent.recv(100) == b""  # the server hung up on us
        assert slow.recv(100) == b""
        waited = time.monotonic() - t0
    assert 0.2 < waited < 10
    assert server.stats["timeouts"] == 2
    still_serves(server)


def test_slow_trickle_hits_the_read_deadline(model_dir, start_server):
    server = start_server(model_dir, idle_timeout=5.0, read_timeout=0.5)
    with socket.create_connection(server.address, timeout=IO_TIMEOUT) as sock:
        sock.sendall(b"000000001000")
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < 8:
                sock.sendall(b"x")  # one byte at a time, each well inside the idle timeout
                time.sleep(0.1)
        except OSError:
            pass
        sock.settimeout(IO_TIMEOUT)
        try:
            rest = sock.recv(100)
        except OSError:
            rest = b""
        assert rest == b""
    assert time.monotonic() - t0 < 8
    assert server.stats["timeouts"] == 1


def test_too_many_connections_answered_busy(model_dir, start_server):
    server = start_server(model_dir, max_connections=2, idle_timeout=5.0)
    held = [socket.create_connection(server.address, timeout=IO_TIMEOUT) for _ in range(2)]
    try:
        time.sleep(0.3)
        assert "busy" in error_of(parse_answer(send(server.address, b"")))
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the held connections end; the server serves again
        answer = info(server.address)
        if not answer.HasField("error"):
            break
        time.sleep(0.1)
    assert answer.r1.num_models == 2


def test_too_much_data_in_flight_answered_busy(model_dir, start_server):
    server = start_server(model_dir, max_inflight_bytes=60_000, idle_timeout=5.0)
    body = request_bytes(inference_request("Denoise", pixels()))  # 27 KB
    with socket.create_connection(server.address, timeout=IO_TIMEOUT) as held:
        held.sendall(body[:1000])  # a 27 KB request announced and half sent: its bytes are reserved
        time.sleep(0.3)
        second = send(server.address, body)  # 27 KB more still fit
        assert not parse_answer(second).HasField("error")
        with socket.create_connection(server.address, timeout=IO_TIMEOUT) as other:
            other.sendall(body[:1000])
            time.sleep(0.3)
            assert "busy" in error_of(parse_answer(send(server.address, body)))  # 3 x 27 KB > 60 KB
    still_serves(server)  # released when the held requests ended


# --- token ----------------------------------------------------------------------------------------

def test_token(model_dir, start_server):
    server = start_server(model_dir, token="s3cret")
    options = {m.name: [o.name for o in m.string_options] for m in info(server.address).r1.models}
    assert all("token" in names for names in options.values())  # so Nuke's MLClient shows a knob for it
    assert "token" in error_of(exchange(server.address, inference_request("Matte", pixels())))
    assert "wrong token" in error_of(exchange(server.address, inference_request("Matte", pixels(), token="nope")))
    x = pixels()
    torch.testing.assert_close(run(server.address, "Matte", x, token="s3cret"),
                               local(server.catalog.get("Matte").path, x))


def test_default_bind_is_loopback(model_dir):
    from nodegraph.serve import ServerConfig

    assert ServerConfig().host == "127.0.0.1"
    assert ServerConfig().port == 55555


# --- batching -------------------------------------------------------------------------------------

def test_concurrent_requests_of_one_shape_share_a_batch(model_dir, start_server, monkeypatch):
    import threading

    gate = threading.Event()
    real = infer.infer_frames
    sizes = []

    def slow_first(path, x, settings, **kw):  # hold the worker until the other requests are queued
        sizes.append(x.shape[0])
        gate.wait(IO_TIMEOUT)
        return real(path, x, settings, **kw)

    monkeypatch.setattr(infer, "infer_frames", slow_first)
    server = start_server(model_dir, max_batch=4)
    xs = [pixels(seed=s) for s in range(5)]
    results = [None] * len(xs)

    def client(i):
        results[i] = run(server.address, "Denoise", xs[i])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(xs))]
    threads[0].start()
    deadline = time.monotonic() + IO_TIMEOUT
    while not sizes and time.monotonic() < deadline:
        time.sleep(0.01)
    for t in threads[1:]:
        t.start()
    while len(server.batcher._pending) < 4 and time.monotonic() < deadline:  # all four queued
        time.sleep(0.01)
    gate.set()
    for t in threads:
        t.join(IO_TIMEOUT)
    assert sizes[0] == 1 and max(sizes[1:]) == 4  # the 4 queued ones ran as one batch of max_batch
    path = server.catalog.get("Denoise").path
    for x, y in zip(xs, results):
        torch.testing.assert_close(y, local(path, x), atol=1e-5, rtol=1e-5)


def test_requests_of_different_options_or_sizes_are_not_batched_together(model_dir, start_server):
    from nodegraph.serve.server import _Job

    m = start_server(model_dir).catalog.get("Denoise")
    a = _Job(m, torch.zeros(3, 8, 8), {"strength": 0.1})
    b = _Job(m, torch.zeros(3, 8, 8), {"strength": 0.2})
    c = _Job(m, torch.zeros(3, 8, 9), {"strength": 0.1})
    assert len({a.key(), b.key(), c.key()}) == 3
    assert a.key() == _Job(m, torch.ones(3, 8, 8), {"strength": 0.1}).key()


# --- what is served ---------------------------------------------------------------------------------

def test_unreadable_and_untrusted_files_are_skipped(tmp_path, start_server, monkeypatch):
    from nodegraph.ml.torchscript import create_cat_from_torchscript

    monkeypatch.delenv("NODEGRAPH_ALLOW_TORCHSCRIPT", raising=False)
    monkeypatch.delenv("NODEGRAPH_TRUSTED_MODEL_DIRS", raising=False)
    folder = tmp_path / "m"
    folder.mkdir()
    tiny_cat(folder / "Good.cat")
    (folder / "Broken.cat").write_bytes(b"PK\x03\x04 not really")
    module = torch.jit.script(torch.nn.Conv2d(3, 3, 1))
    module.save(str(tmp_path / "ts.pt"))
    monkeypatch.setenv("NODEGRAPH_ALLOW_TORCHSCRIPT", "1")
    create_cat_from_torchscript(tmp_path / "ts.pt", folder / "Script.cat", channels_in="rgb", channels_out="rgb",
                                model_id="ts")
    monkeypatch.delenv("NODEGRAPH_ALLOW_TORCHSCRIPT")
    server = start_server(folder)
    assert set(server.catalog.models) == {"Good"}
    assert "TorchScript" in server.catalog.skipped[str(folder / "Script.cat")]
    assert str(folder / "Broken.cat") in server.catalog.skipped
    monkeypatch.setenv("NODEGRAPH_TRUSTED_MODEL_DIRS", str(folder))  # opting in, as --allow-torchscript does
    assert {m.name for m in info(server.address).r1.models} == {"Good", "Script"}
    x = pixels()
    torch.testing.assert_close(run(server.address, "Script", x), module(x[None])[0].detach(), atol=1e-5, rtol=1e-5)


def test_same_file_name_in_two_folders(tmp_path, start_server):
    from nodegraph.serve import Catalog

    for name in ("shotA", "shotB"):
        (tmp_path / name).mkdir()
        tiny_cat(tmp_path / name / "CopyCat1.cat")
    catalog = Catalog([tmp_path / "shotA", tmp_path / "shotB"])
    assert set(catalog.models) == {"shotA/CopyCat1", "shotB/CopyCat1"}
    assert catalog.models["shotB/CopyCat1"].path == tmp_path / "shotB" / "CopyCat1.cat"


def test_missing_folder_is_an_error(tmp_path):
    from nodegraph.serve import Catalog, ServeError

    with pytest.raises(ServeError, match="does not exist"):
        Catalog([tmp_path / "nope"])


def test_model_error_reaches_the_client(model_dir, start_server):
    server = start_server(model_dir)
    (model_dir / "Denoise.cat").write_bytes(b"PK\x03\x04 corrupted since the scan")
    msg = error_of(exchange(server.address, inference_request("Denoise", pixels())))
    assert "Denoise" in msg
    still_serves(server, models=1)  # no longer listed once the folder is scanned again
