"""The one domain exception hierarchy of loopml.

Domain code raises these; it never imports grpc. The server's error interceptor
(`loopml.runtime.grpcserver.errors`) maps each class to a gRPC status code with
`google.rpc.Status` details, in one table. Anything that is not a `LoopmlError`
becomes INTERNAL there and is logged with its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: `field` is a dotted path such as `header.name`."""

    field: str
    description: str


class LoopmlError(Exception):
    """Base of every error a client is meant to see."""

    #: Name of the gRPC status code this error maps to (see grpcserver/errors.py).
    code = "UNKNOWN"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidArgument(LoopmlError):
    """The request is malformed. Names the offending field(s)."""

    code = "INVALID_ARGUMENT"

    def __init__(self, field: str, description: str, *, more: list[FieldViolation] | None = None):
        self.violations = [FieldViolation(field, description), *(more or [])]
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))

    @property
    def field(self) -> str:
        return self.violations[0].field


class NotFound(LoopmlError):
    """A named resource does not exist."""

    code = "NOT_FOUND"

    def __init__(self, resource_type: str, resource_name: str, description: str = ""):
        self.resource_type = resource_type
        self.resource_name = resource_name
        self.description = description or f"{resource_type} {resource_name!r} not found"
        super().__init__(self.description)


class AlreadyExists(LoopmlError):
    code = "ALREADY_EXISTS"

    def __init__(self, resource_type: str, resource_name: str, description: str = ""):
        self.resource_type = resource_type
        self.resource_name = resource_name
        self.description = description or f"{resource_type} {resource_name!r} already exists"
        super().__init__(self.description)


class FailedPrecondition(LoopmlError):
    """The system is not in a state the operation needs (e.g. a version an alias points at)."""

    code = "FAILED_PRECONDITION"

    def __init__(self, message: str, *, subject: str = "", violation_type: str = ""):
        self.subject = subject
        self.violation_type = violation_type
        super().__init__(message)


class Aborted(LoopmlError):
    """A concurrency conflict; the client may retry the whole read-modify-write."""

    code = "ABORTED"


class OutOfRange(LoopmlError):
    code = "OUT_OF_RANGE"


class ResourceExhausted(LoopmlError):
    """A size, quota or capacity limit was hit; the message states the limit."""

    code = "RESOURCE_EXHAUSTED"


class Cancelled(LoopmlError):
    code = "CANCELLED"


class DataLoss(LoopmlError):
    """Stored or sent bytes do not match their checksum."""

    code = "DATA_LOSS"


class Unavailable(LoopmlError):
    """A dependency (database, object store, another service) is not answering. Retryable."""

    code = "UNAVAILABLE"


class DeadlineExceeded(LoopmlError):
    code = "DEADLINE_EXCEEDED"


class Unauthenticated(LoopmlError):
    code = "UNAUTHENTICATED"


class PermissionDenied(LoopmlError):
    code = "PERMISSION_DENIED"


class Unimplemented(LoopmlError):
    code = "UNIMPLEMENTED"


__all__ = [
    "Aborted",
    "AlreadyExists",
    "Cancelled",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "LoopmlError",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
]
