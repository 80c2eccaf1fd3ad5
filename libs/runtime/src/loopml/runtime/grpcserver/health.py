"""A truthful grpc.health.v1 service: SERVING only while the service's dependencies answer."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping

from grpc_health.v1 import health, health_pb2

log = logging.getLogger("loopml.health")

#: Health service name that only says the process is up (for liveness probes).
LIVENESS = "liveness"

#: A dependency probe: returns when the dependency answers, raises when it does not.
Probe = Callable[[], None]


class HealthMonitor:
    """Probes dependencies on a timer and publishes the result for every served service name.

    The overall status (service name "") and each service's status are the same: a loopml
    process serves one service whose RPCs all need the same dependencies.

    The name `liveness` answers SERVING while the process serves at all, whatever its
    dependencies say, until shutdown: a liveness probe must not restart a pod because the
    database is down (readiness, on "", takes it out of the load balancer instead).
    """

    def __init__(self, service_names: Iterable[str], probes: Mapping[str, Probe], interval_s: float):
        self.servicer = health.HealthServicer(experimental_non_blocking=True)
        self._names = ["", *service_names]
        self._probes = dict(probes)
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures: dict[str, str] = {}
        self._set(health_pb2.HealthCheckResponse.NOT_SERVING)
        self.servicer.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)

    @property
    def failures(self) -> dict[str, str]:
        """Dependency name -> last error, for the probes that failed last time."""
        return dict(self._failures)

    def probe_once(self) -> bool:
        failures = {}
        for name, probe in self._probes.items():
            try:
                probe()
            except Exception as exc:  # noqa: BLE001 - any failure means the dependency is down
                failures[name] = str(exc) or type(exc).__name__
        if failures != self._failures:
            if failures:
                log.warning("dependencies not answering: %s", failures)
            elif self._failures:
                log.info("dependencies answering again")
        self._failures = failures
        healthy = not failures
        self._set(
            health_pb2.HealthCheckResponse.SERVING if healthy else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        return healthy

    def start(self) -> None:
        self.probe_once()
        self._thread = threading.Thread(target=self._run, name="health-monitor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.probe_once()

    def shutdown(self) -> None:
        """NOT_SERVING from now on, whatever the probes say."""
        self._stop.set()
        self.servicer.enter_graceful_shutdown()

    def _set(self, status) -> None:
        for name in self._names:
            self.servicer.set(name, status)
