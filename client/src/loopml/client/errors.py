"""Readable exceptions for failed calls, built from the gRPC status and its details."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass
class FieldViolation:
    field: str
    description: str


class LoopmlClientError(Exception):
    """A call failed. `code` is the gRPC status code name, e.g. "NOT_FOUND"."""

    def __init__(self, code: str, message: str, *, field_violations=None, resource_type="", resource_name="",
                 request_id=""):
        self.code = code
        self.message = message
        self.field_violations: list[FieldViolation] = list(field_violations or [])
        self.resource_type = resource_type
        self.resource_name = resource_name
        self.request_id = request_id
        super().__init__(f"{code}: {message}")


class InvalidArgumentError(LoopmlClientError):
    pass


class NotFoundError(LoopmlClientError):
    pass


class AlreadyExistsError(LoopmlClientError):
    pass


class FailedPreconditionError(LoopmlClientError):
    pass


class PermissionDeniedError(LoopmlClientError):
    pass


class UnauthenticatedError(LoopmlClientError):
    pass


class UnavailableError(LoopmlClientError):
    pass


class DeadlineExceededError(LoopmlClientError):
    pass


class ResourceExhaustedError(LoopmlClientError):
    pass


class DataLossError(LoopmlClientError):
    pass


class CancelledError(LoopmlClientError):
    pass


class UnimplementedError(LoopmlClientError):
    pass


_BY_CODE = {
    "INVALID_ARGUMENT": InvalidArgumentError,
    "OUT_OF_RANGE": InvalidArgumentError,
    "NOT_FOUND": NotFoundError,
    "ALREADY_EXISTS": AlreadyExistsError,
    "FAILED_PRECONDITION": FailedPreconditionError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "UNAUTHENTICATED": UnauthenticatedError,
    "UNAVAILABLE": UnavailableError,
    "DEADLINE_EXCEEDED": DeadlineExceededError,
    "RESOURCE_EXHAUSTED": ResourceExhaustedError,
    "DATA_LOSS": DataLossError,
    "CANCELLED": CancelledError,
    "UNIMPLEMENTED": UnimplementedError,
}


def from_rpc_error(error: grpc.RpcError) -> LoopmlClientError:
    """Turn a failed call into the matching `LoopmlClientError` subclass, details included."""
    code = error.code().name if hasattr(error, "code") and error.code() else "UNKNOWN"
    message = error.details() if hasattr(error, "details") else str(error)
    violations: list[FieldViolation] = []
    resource_type = resource_name = request_id = ""
    try:
        status = rpc_status.from_call(error)
    except (ValueError, AttributeError):
        status = None
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations += [FieldViolation(v.field, v.description) for v in bad.field_violations]
            elif detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
                info = error_details_pb2.ResourceInfo()
                detail.Unpack(info)
                resource_type, resource_name = info.resource_type, info.resource_name
    try:
        request_id = dict(error.trailing_metadata() or ()).get("x-request-id", "")
    except (AttributeError, TypeError):
        pass
    cls = _BY_CODE.get(code, LoopmlClientError)
    return cls(code, message or code, field_violations=violations, resource_type=resource_type,
               resource_name=resource_name, request_id=request_id)
