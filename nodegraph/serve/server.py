"""The ML server: one thread per connection, one worker running the models, batching requests.

Each connection carries one request (info or inference) and gets one answer, then is closed.
Connection threads parse and check a request (framing, message, model name, token, option
values, image size) and queue an inference job; one worker thread runs the jobs, taking every
queued job for the same model, image size and option values (up to ``max_batch``) into one
forward through :func:`nodegraph.ml.infer.infer_frames`, so concurrent artists and farm nodes
share the GPU's batch throughput. Anything wrong with a request is answered with an ``Error``
message naming the problem (malformed length headers too, when the connection still takes
writes); the server keeps serving. A client that sends nothing for ``idle_timeout`` seconds,
or does not finish its message within ``read_timeout``, is disconnected. At most
``max_connections`` are served at once, and requests holding more than ``max_inflight_bytes``
together are not read; more are answered "busy" at once, so memory stays bounded whatever the
clients send.
"""

from __future__ import annotations

import hmac
import logging
import socket
import threading
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from google.protobuf.message import DecodeError

from nodegraph.errors import NodeGraphError
from nodegraph.ml import infer

from .catalog import Catalog, ServedModel
from .protocol import (HEADER_BYTES, TOKEN_OPTION, ProtocolError, ServeError, TruncatedError, error_response, fill_image,
                       image_to_tensor, parse_header, pb, recv_exactly, send_message)

log = logging.getLogger("nodegraph.serve")


@dataclass
class ServerConfig:
    """How a server listens and runs models (``nodegraph serve``'s options)."""

    host: str = "127.0.0.1"
    port: int = 55555
    token: str | None = None
    device: str | None = None  # None: the first CUDA device when there is one, else the CPU
    half: bool = False
    max_batch: int = 8
    tile: int = 0
    overlap: int = 32
    idle_timeout: float = 30.0
    read_timeout: float = 300.0
    max_message_bytes: int = 1 << 30
    max_pixels: int = 64 * 1024 * 1024
    max_connections: int = 64
    max_inflight_bytes: int = 4 << 30


@dataclass
class _Job:
    model: ServedModel
    x: torch.Tensor
    knobs: dict[str, Any]
    future: Future = field(default_factory=Future)

    def key(self) -> tuple:
        return (self.model.name, tuple(self.x.shape), repr(sorted(self.knobs.items())))


class Batcher:
    """One worker thread running queued jobs; jobs of one key (model, image shape, knob values)
    queued together run as one batch. ``batches`` counts the batch sizes run (for tests and logs)."""

    def __init__(self, device: torch.device, *, half: bool = False, max_batch: int = 8, tile: int = 0,
                 overlap: int = 32) -> None:
        self.device, self.half, self.max_batch = device, half, max(1, int(max_batch))
        self.tile, self.overlap = tile, overlap
        self.batches: Counter[int] = Counter()
        self._pending: list[_Job] = []
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="nodegraph-serve-worker", daemon=True)
        self._thread.start()

    def submit(self, model: ServedModel, x: torch.Tensor, knobs: dict[str, Any]) -> Future:
        job = _Job(model, x, knobs)
        with self._cond:
            if self._stopped:
                raise ServeError("the server is shutting down")
            self._pending.append(job)
            self._cond.notify()
        return job.future

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            pending, self._pending = self._pending, []
            self._cond.notify_all()
        for job in pending:
            job.future.set_exception(ServeError("the server is shutting down"))
        self._thread.join(timeout=30)

    def _take(self) -> list[_Job] | None:
        with self._cond:
            while not self._pending and not self._stopped:
                self._cond.wait()
            if self._stopped:
                return None
            key = self._pending[0].key()
            batch = [j for j in self._pending if j.key() == key][:self.max_batch]
            taken = {id(j) for j in batch}
            self._pending = [j for j in self._pending if id(j) not in taken]
            return batch

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            first = batch[0]
            settings = infer.InferenceSettings(device=self.device, half=self.half, tile=self.tile,
                                               overlap=self.overlap, knob_values=dict(first.knobs),
                                               name=first.model.name)
            try:
                y = infer.infer_frames(first.model.path, torch.stack([j.x for j in batch]), settings)
            except Exception as exc:  # every job of the batch gets the error; the worker goes on
                for job in batch:
                    job.future.set_exception(exc)
                continue
            self.batches[len(batch)] += 1
            for i, job in enumerate(batch):
                job.future.set_result(y[i])
            del y, batch, first


class MLServer:
    """A server offering the models of ``catalog`` with ``config``; :meth:`start` binds and serves
    in background threads (``port=0`` picks a free port: see :attr:`address`), :meth:`stop` ends."""

    def __init__(self, catalog: Catalog, config: ServerConfig | None = None) -> None:
        self.catalog = catalog
        self.config = config or ServerConfig()
        name = self.config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.device = torch.device(name)
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._threads: set[threading.Thread] = set()
        self._active = threading.Semaphore(self.config.max_connections)
        self._inflight = 0  # bytes of the requests being read or run
        self._stop = threading.Event()
        self.batcher: Batcher | None = None
        self._acceptor: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._sock is None:
            raise ServeError("the server is not started")
        host, port = self._sock.getsockname()[:2]
        return host, port

    def start(self) -> "MLServer":
        c = self.config
        try:
            infos = socket.getaddrinfo(c.host, c.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            family, _, _, _, addr = infos[0]
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(min(socket.SOMAXCONN, 4 * c.max_connections))
        except OSError as exc:
            raise ServeError(f"cannot listen on {c.host}:{c.port}: {exc.strerror or exc}") from None
        sock.settimeout(0.2)  # the accept loop looks at the stop flag this often
        self._sock = sock
        self.batcher = Batcher(self.device, half=c.half, max_batch=c.max_batch, tile=c.tile, overlap=c.overlap)
        self._acceptor = threading.Thread(target=self._accept_loop, name="nodegraph-serve-accept", daemon=True)
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        if self.batcher is not None:
            self.batcher.stop()
        for t in list(self._threads):
            t.join(timeout=5)

    def shutdown(self) -> None:
        """Ask :meth:`serve_forever` to return (safe from a signal handler)."""
        self._stop.set()

    def __enter__(self) -> "MLServer":
        return self.start() if self._sock is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Start (if needed) and block until :meth:`stop` or Ctrl-C."""
        if self._sock is None:
            self.start()
        try:
            while not self._stop.wait(0.5):
                pass
        finally:
            self.stop()

    def count(self, what: str) -> None:
        with self._stats_lock:
            self.stats[what] += 1

    # --- connections --------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _peer = self._sock.accept()
            except (socket.timeout, BlockingIOError):
                continue
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.05)  # out of file descriptors, say: let connections finish
                continue
            if not self._active.acquire(blocking=False):
                self.count("busy")
                self._send(conn, error_response("the server is busy (too many connections); try again"), linger=False)
                continue
            t = threading.Thread(target=self._connection, args=(conn,), name="nodegraph-serve-conn", daemon=True)
            self._threads.add(t)
            t.start()

    def _connection(self, conn: socket.socket) -> None:
        try:
            answer = self._answer(conn)
            if answer is not None:
                self._send(conn, answer)
        finally:
            self._active.release()
            self._threads.discard(threading.current_thread())

    def _reserve(self, length: int) -> bool:
        with self._stats_lock:
            if self._inflight + length > self.config.max_inflight_bytes:
                return False
            self._inflight += length
            return True

    def _release(self, length: int) -> None:
        with self._stats_lock:
            self._inflight -= length

    def _send(self, conn: socket.socket, answer: pb.RespondWrapper, *, linger: bool = True) -> None:
        try:
            conn.settimeout(self.config.read_timeout)
            send_message(conn, answer)
            conn.shutdown(socket.SHUT_WR)
            if not linger:
                return
            # lingering close: closing with unread bytes (a request refused before it was read
            # whole) makes the kernel reset the connection, which can destroy the answer in flight
            end = time.monotonic() + 0.5
            while (left := end - time.monotonic()) > 0:
                conn.settimeout(left)
                if not conn.recv(1 << 16):
                    break
        except OSError:
            self.count("send_failed")
        finally:
            conn.close()

    def _answer(self, conn: socket.socket) -> pb.RespondWrapper | None:
        """The answer to the one request on ``conn``, or None when there is nobody to answer."""
        c = self.config
        try:
            length = parse_header(recv_exactly(conn, HEADER_BYTES, idle=c.idle_timeout, what="length header"))
        except TruncatedError as err:
            if not err.received:  # connected and left: nobody to answer
                self.count("empty")
                conn.close()
                return None
            return self._failed(conn, err)
        except (ProtocolError, OSError) as err:
            return self._failed(conn, err)
        if length == 0 or length > c.max_message_bytes:
            self.count("errors")
            return error_response(f"a request of {length:,} bytes: requests must have 1 to "
                                  f"{c.max_message_bytes:,} bytes (the server's --max-message-mb)")
        if not self._reserve(length):
            self.count("busy")
            return error_response("the server is busy (too much image data in flight); try again")
        try:
            try:
                data = recv_exactly(conn, length, idle=c.idle_timeout, deadline=time.monotonic() + c.read_timeout)
            except (ProtocolError, OSError) as err:
                return self._failed(conn, err)
            return self._handle(data)
        finally:
            self._release(length)

    def _failed(self, conn: socket.socket, err: Exception) -> pb.RespondWrapper | None:
        """A read that failed: an Error answer for bad bytes; a silent or broken peer is dropped."""
        if isinstance(err, ProtocolError):
            self.count("errors")
            return error_response(err.message)
        self.count("timeouts" if isinstance(err, socket.timeout) else "errors")
        conn.close()
        return None

    def _handle(self, data: bytearray) -> pb.RespondWrapper:
        try:
            request = pb.RequestWrapper.FromString(data)
            del data
            if request.HasField("r2"):
                answer = self._inference(request.r2)
            elif request.HasField("r1"):
                answer = self._info()
            else:
                raise ProtocolError("the request holds neither an info request (r1) nor an inference request (r2)")
            self.count("answered")
            return answer
        except DecodeError:
            self.count("errors")
            return error_response("the request is not a serialized mlserver.RequestWrapper message")
        except NodeGraphError as err:
            self.count("errors")
            return error_response(str(err))
        except Exception as exc:  # a bug must not take the server down; the client hears of it
            log.exception("request failed")
            self.count("errors")
            return error_response(f"internal server error: {type(exc).__name__}: {exc}")

    def _info(self) -> pb.RespondWrapper:
        self.catalog.refresh()
        out = pb.RespondWrapper(info=True)
        models = list(self.catalog.models.values())
        out.r1.num_models = len(models)
        for model in models:
            out.r1.models.append(model.to_message(token=bool(self.config.token)))
        return out

    def _check_token(self, m: pb.Model) -> None:
        if not self.config.token:
            return
        given = [o for o in m.string_options if o.name == TOKEN_OPTION]
        value = given[0].values[0] if given and given[0].values else ""
        if not hmac.compare_digest(value.encode(), self.config.token.encode()):
            raise ServeError("the server needs its shared token: set the 'token' option to it"
                             if not value else "wrong token")

    def _inference(self, request: pb.RequestInference) -> pb.RespondWrapper:
        if not request.HasField("model") or not request.model.HasField("name"):
            raise ProtocolError("the inference request names no model")
        self._check_token(request.model)
        model = self.catalog.get(request.model.name)
        knobs = model.knob_values(request.model)
        if len(request.images) != 1:
            raise ProtocolError(f"model {model.name!r} takes one image, the request has {len(request.images)}")
        x = image_to_tensor(request.images[0], channels=len(model.meta["channels_in"]), max_pixels=self.config.max_pixels,
                            what=f"the image for model {model.name!r}")
        request.Clear()  # the pixels now live in x alone
        assert self.batcher is not None
        y = self.batcher.submit(model, x, knobs).result()
        out = pb.RespondWrapper(info=True)
        out.r2.num_images = 1
        out.r2.num_objects = 0
        fill_image(out.r2.images.add(), y)
        return out


def serve(folders: list[str | Path], config: ServerConfig | None = None) -> MLServer:
    """A started server offering the models of ``folders``."""
    return MLServer(Catalog([Path(f) for f in folders]), config).start()


__all__ = ["Batcher", "MLServer", "ServerConfig", "serve"]
