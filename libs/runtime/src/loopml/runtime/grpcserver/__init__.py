"""gRPC server bootstrap shared by all services: health, reflection, auth, errors, logs, shutdown."""

from loopml.runtime.grpcserver.health import HealthMonitor, Probe
from loopml.runtime.grpcserver.logs import configure_logging, request_id_var
from loopml.runtime.grpcserver.server import ServiceRegistration, ServiceServer, channel_options

__all__ = [
    "HealthMonitor",
    "Probe",
    "ServiceRegistration",
    "ServiceServer",
    "channel_options",
    "configure_logging",
    "request_id_var",
]
