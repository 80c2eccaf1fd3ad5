"""The server bootstrap every loopml service uses.

`ServiceServer` is built unstarted (tests bind port 0 and read `.port`); `serve_forever()` is what
a service's `main()` calls: start, then on SIGTERM/SIGINT go NOT_SERVING, drain in-flight calls for
`shutdown_grace_s`, close resources and return.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from loopml.runtime.grpcserver.health import HealthMonitor, Probe
from loopml.runtime.grpcserver.interceptors import CallInterceptor
from loopml.runtime.settings import ServiceSettings

log = logging.getLogger("loopml.server")


@dataclass(frozen=True)
class ServiceRegistration:
    """One gRPC service to serve: its full name, the generated `add_*_to_server`, the servicer."""

    full_name: str
    add_to_server: Callable[[object, grpc.Server], None]
    servicer: object


def channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """Options shared by servers and clients so both sides agree on message limits."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


def server_credentials(settings: ServiceSettings) -> grpc.ServerCredentials | None:
    """TLS credentials from the settings' certificate files (mutual TLS when a client CA is set),
    or None for a plaintext server."""
    if not settings.tls_cert_file:
        return None
    key = Path(settings.tls_key_file).read_bytes()
    chain = Path(settings.tls_cert_file).read_bytes()
    client_ca = Path(settings.tls_client_ca_file).read_bytes() if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


class _Call:
    """A call handed to the worker threads. grpc only registers a done callback on it."""

    __slots__ = ("fn", "args", "kwargs", "_lock", "_callbacks", "_done")

    def __init__(self, fn, args, kwargs):
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self._lock = threading.Lock()
        self._callbacks: list = []
        self._done = False

    def add_done_callback(self, callback) -> None:
        with self._lock:
            if not self._done:
                self._callbacks.append(callback)
                return
        callback(self)

    def run(self) -> None:
        try:
            self.fn(*self.args, **self.kwargs)
        except BaseException:  # noqa: BLE001 - a worker thread outlives any call
            log.exception("error in a server worker thread")
        with self._lock:
            self._done = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:  # noqa: BLE001
                log.exception("error in a call's done callback")


class WorkerPool:
    """The server's worker threads (what grpc.server takes as its thread pool): started as calls
    come, up to `max_workers`; `busy` is how many of them are serving a call right now (dynamic
    batching reads it to wait only for calls already in progress). Leaner per call than
    ThreadPoolExecutor: no Future with its condition variable, no idle semaphore."""

    def __init__(self, max_workers: int):
        self._max = max_workers
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a call that no submitted call has claimed yet
        self._backlog = 0  # calls waiting for a thread to finish its current call

    @property
    def busy(self) -> int:
        return len(self._threads) - self._idle

    def submit(self, fn, /, *args, **kwargs) -> _Call:
        call = _Call(fn, args, kwargs)
        with self._lock:
            if self._idle:
                self._idle -= 1  # an idle thread takes it
            elif len(self._threads) < self._max:
                thread = threading.Thread(target=self._work, name=f"rpc_{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
            else:
                self._backlog += 1  # the next thread to finish takes it
        self._queue.put(call)
        return call

    def _work(self) -> None:
        take, lock = self._queue.get, self._lock
        while True:
            call = take()
            if call is None:
                return
            call.run()
            call = None
            with lock:
                if self._backlog:
                    self._backlog -= 1
                else:
                    self._idle += 1

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            threads, self._threads, self._max, self._idle, self._backlog = self._threads, [], 0, 0, 0
        for _ in threads:
            self._queue.put(None)
        if wait:
            for thread in threads:
                thread.join()


class ServiceServer:
    def __init__(
        self,
        settings: ServiceSettings,
        registrations: Sequence[ServiceRegistration],
        probes: Mapping[str, Probe] | None = None,
        on_stop: Sequence[Callable[[], None]] = (),
        on_start: Sequence[Callable[[], None]] = (),
        on_stopping: Sequence[Callable[[], None]] = (),
    ):
        """`on_start` runs once the server is serving (background work); `on_stopping` as the
        server begins to stop, before in-flight calls drain (e.g. ending endless watch streams);
        `on_stop` after the drain (closing resources)."""
        self.settings = settings
        self._registrations = list(registrations)
        self._on_start = list(on_start)
        self._on_stopping = list(on_stopping)
        self._on_stop = list(on_stop)
        self.health = HealthMonitor(
            [r.full_name for r in self._registrations], probes or {}, settings.health_interval_s
        )
        self.workers = WorkerPool(settings.max_workers)
        self._server = grpc.server(
            self.workers,
            interceptors=[CallInterceptor(settings.max_upload_bytes, settings.token_roles())],
            options=[*channel_options(settings.max_message_bytes), ("grpc.so_reuseport", 0)],
            maximum_concurrent_rpcs=settings.max_concurrent_rpcs or None,
        )
        for registration in self._registrations:
            registration.add_to_server(registration.servicer, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, self._server)
        reflection.enable_server_reflection(
            [
                *(r.full_name for r in self._registrations),
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            self._server,
        )
        credentials = server_credentials(settings)
        if credentials is None:
            self.port = self._server.add_insecure_port(settings.listen_address)
        else:
            self.port = self._server.add_secure_port(settings.listen_address, credentials)
        if self.port == 0:
            raise OSError(f"cannot bind {settings.listen_address}")
        self._stopped = threading.Event()
        self._metrics_http = None

    @property
    def address(self) -> str:
        host = self.settings.listen_address.rpartition(":")[0]
        if host in ("0.0.0.0", "[::]", ""):
            host = "127.0.0.1"
        return f"{host}:{self.port}"

    def start(self) -> ServiceServer:
        self._server.start()
        self.health.start()
        if self.settings.prometheus_address:
            from prometheus_client import start_http_server

            host, _, port = self.settings.prometheus_address.rpartition(":")
            self._metrics_http, _ = start_http_server(int(port), addr=host)
        for begin in self._on_start:
            begin()
        log.info("serving %s on %s", ", ".join(r.full_name for r in self._registrations), self.address)
        return self

    def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING, refuse new calls, let in-flight calls finish within `grace`, close resources."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.settings.shutdown_grace_s if grace is None else grace
        self.health.shutdown()
        self._run_all(self._on_stopping)
        self._server.stop(grace).wait()
        self.workers.shutdown(wait=False)
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
        self._run_all(self._on_stop)
        log.info("stopped")

    @staticmethod
    def _run_all(hooks: Sequence[Callable[[], None]]) -> None:
        for hook in hooks:
            try:
                hook()
            except Exception:  # noqa: BLE001 - keep running the rest
                log.exception("error in a shutdown hook")

    def wait(self) -> None:
        self._server.wait_for_termination()

    def serve_forever(self) -> None:
        """Start, then block until SIGTERM or SIGINT, then shut down gracefully."""
        stop_requested = threading.Event()

        def request_stop(signum, _frame):
            log.info("received %s, shutting down", signal.Signals(signum).name)
            stop_requested.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        self.start()
        while not stop_requested.wait(0.5):
            pass
        if self.settings.shutdown_delay_s:
            # Report NOT_SERVING while still answering, so traffic moves away first.
            self.health.shutdown()
            log.info("draining: NOT_SERVING for %.1fs before refusing calls", self.settings.shutdown_delay_s)
            time.sleep(self.settings.shutdown_delay_s)
        self.stop()
