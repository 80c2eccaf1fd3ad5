"""The one table that maps domain errors to gRPC status codes with `google.rpc.Status` details."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from loopml.runtime import errors

_DOMAIN = "loopml.io"


def _pack(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _details(exc: errors.LoopmlError) -> list[any_pb2.Any]:
    """The structured details a client can read besides the message."""
    if isinstance(exc, errors.InvalidArgument):
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in exc.violations
            ]
        )
        return [_pack(bad)]
    if isinstance(exc, (errors.NotFound, errors.AlreadyExists)):
        info = error_details_pb2.ResourceInfo(
            resource_type=exc.resource_type,
            resource_name=exc.resource_name,
            description=exc.description,
        )
        return [_pack(info)]
    if isinstance(exc, errors.FailedPrecondition) and exc.subject:
        failure = error_details_pb2.PreconditionFailure(
            violations=[
                error_details_pb2.PreconditionFailure.Violation(
                    type=exc.violation_type or "STATE", subject=exc.subject, description=exc.message
                )
            ]
        )
        return [_pack(failure)]
    return []


class _Status(grpc.Status):
    def __init__(self, code, details, trailing_metadata):
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


def _with_metadata(status: grpc.Status, metadata: tuple) -> grpc.Status:
    return _Status(status.code, status.details, (*status.trailing_metadata, *metadata))


def to_grpc_status(exc: errors.LoopmlError, metadata: tuple = ()) -> grpc.Status:
    """Turn a domain error into the status the server aborts with (plus extra trailing metadata)."""
    code = getattr(code_pb2, exc.code, code_pb2.UNKNOWN)
    status = status_pb2.Status(code=code, message=exc.message, details=_details(exc))
    return _with_metadata(rpc_status.to_status(status), metadata)


def internal_status(request_id: str, metadata: tuple = ()) -> grpc.Status:
    message = f"internal error (request id {request_id}); the server log has the details"
    status = rpc_status.to_status(status_pb2.Status(code=code_pb2.INTERNAL, message=message))
    return _with_metadata(status, metadata)
