"""Server interceptors: request ids, domain-error mapping, logging, metrics, and bearer-token auth.

Servicers stay thin because of these: they raise `loopml.runtime.errors` exceptions and this
module turns them into status codes; they never see tokens or request ids.
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping

import grpc
from prometheus_client import Counter, Histogram

from loopml.runtime import errors
from loopml.runtime.grpcserver import auth
from loopml.runtime.grpcserver.logs import request_id_var
from loopml.runtime.grpcserver.status import internal_status, to_grpc_status

log = logging.getLogger("loopml.rpc")

REQUEST_ID_HEADER = "x-request-id"
#: Calls that stay open without a token: health checks and server reflection.
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

RPCS_HANDLED = Counter(
    "loopml_grpc_server_handled_total",
    "gRPC calls completed by the server, by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
RPC_SECONDS = Histogram(
    "loopml_grpc_server_handling_seconds",
    "Time to handle a gRPC call (for streams: until the stream ends).",
    ["grpc_service", "grpc_method"],
)


def _rewrap(handler: grpc.RpcMethodHandler, wrap: Callable) -> grpc.RpcMethodHandler:
    """A copy of `handler` whose behaviour is `wrap(behaviour, streaming_response)`."""
    if handler.unary_unary:
        factory, behaviour, streaming = grpc.unary_unary_rpc_method_handler, handler.unary_unary, False
    elif handler.unary_stream:
        factory, behaviour, streaming = grpc.unary_stream_rpc_method_handler, handler.unary_stream, True
    elif handler.stream_unary:
        factory, behaviour, streaming = grpc.stream_unary_rpc_method_handler, handler.stream_unary, False
    else:
        factory, behaviour, streaming = grpc.stream_stream_rpc_method_handler, handler.stream_stream, True
    return factory(
        wrap(behaviour, streaming),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _split(method: str) -> tuple[str, str]:
    _, service, name = method.split("/", 2) if method.count("/") >= 2 else ("", "", method)
    return service, name


class CallInterceptor(grpc.ServerInterceptor):
    """Gives every call a request id, maps domain errors to statuses, logs and counts the call."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if method.startswith(OPEN_PREFIXES):
            return handler
        incoming = dict(handler_call_details.invocation_metadata or ())
        service, name = _split(method)

        def wrap(behaviour, streaming_response: bool):
            if streaming_response:

                def stream(request, context):
                    token, request_id, start = self._begin(incoming, context)
                    completed = False
                    try:
                        yield from behaviour(request, context)
                        completed = True
                    except BaseException as exc:  # noqa: BLE001 - every path must set a status
                        self._fail(exc, context, request_id, method)
                    finally:
                        self._end(token, service, name, completed, start, context)

                return stream

            def unary(request, context):
                token, request_id, start = self._begin(incoming, context)
                completed = False
                try:
                    response = behaviour(request, context)
                    completed = True
                    return response
                except BaseException as exc:  # noqa: BLE001 - every path must set a status
                    self._fail(exc, context, request_id, method)
                finally:
                    self._end(token, service, name, completed, start, context)

            return unary

        return _rewrap(handler, wrap)

    @staticmethod
    def _begin(incoming: dict, context):
        # The request id travels back in trailing metadata: sending headers early would commit the
        # call and stop clients from transparently retrying an UNAVAILABLE answer.
        request_id = incoming.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        context.set_trailing_metadata(((REQUEST_ID_HEADER, request_id),))
        return token, request_id, time.perf_counter()

    @staticmethod
    def _fail(exc: BaseException, context, request_id: str, method: str) -> None:
        """Abort the call with the status `exc` deserves. Always raises."""
        if isinstance(exc, (GeneratorExit, KeyboardInterrupt, SystemExit)):
            raise exc
        request_metadata = ((REQUEST_ID_HEADER, request_id),)
        if isinstance(exc, errors.LoopmlError):
            context.abort_with_status(to_grpc_status(exc, request_metadata))
        if context.code() is not None:  # the servicer already aborted: keep its status
            raise exc
        if isinstance(exc, grpc.RpcError) and not context.is_active():
            raise exc  # the client went away (cancelled or deadline): nothing to answer
        log.exception("unhandled error in %s", method, extra={"method": method})
        context.abort_with_status(internal_status(request_id, request_metadata))
        raise AssertionError("unreachable")  # abort_with_status always raises

    @staticmethod
    def _end(token, service: str, name: str, completed: bool, start: float, context) -> None:
        elapsed = time.perf_counter() - start
        status = context.code()
        code_name = status.name if status is not None else ("OK" if completed else "CANCELLED")
        RPCS_HANDLED.labels(service, name, code_name).inc()
        RPC_SECONDS.labels(service, name).observe(elapsed)
        log.debug(
            "handled %s",
            name,
            extra={"method": f"{service}/{name}", "code": code_name, "duration_ms": round(elapsed * 1000, 2)},
        )
        request_id_var.reset(token)


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Refuses calls without `authorization: Bearer <token>` naming an accepted token
    (UNAUTHENTICATED), or whose token's role may not call the method (PERMISSION_DENIED; the
    table is `loopml.runtime.grpcserver.auth.roles_allowed`).

    `tokens` is {token: role}, or plain tokens (all admin). Health checks and reflection stay
    open. Tokens are compared in constant time and never logged.
    """

    def __init__(self, tokens: Iterable[str] | Mapping[str, str]):
        roles = dict(tokens) if isinstance(tokens, Mapping) else {t: auth.ADMIN for t in tokens}
        self._tokens = tuple((t.encode(), role) for t, role in roles.items())

    def _role(self, header: str) -> str | None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        given = token.strip().encode()
        role = None
        for accepted, accepted_role in self._tokens:  # no early exit: same time for every token
            if hmac.compare_digest(given, accepted):
                role = accepted_role
        return role

    @staticmethod
    def _refuse(code: grpc.StatusCode, message: str):
        def unary(request, context):
            context.abort(code, message)

        def stream(request, context):
            context.abort(code, message)
            yield  # pragma: no cover - makes this a generator like the handler it replaces

        return lambda _behaviour, streaming: stream if streaming else unary

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        if method.startswith(OPEN_PREFIXES):
            return continuation(handler_call_details)
        metadata = dict(handler_call_details.invocation_metadata or ())
        role = self._role(metadata.get("authorization", ""))
        allowed = auth.roles_allowed(method)
        if role in allowed:
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        if role is None:
            refusal = self._refuse(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")
        else:
            needed = " or ".join(sorted(allowed - {auth.ADMIN})) or auth.ADMIN
            refusal = self._refuse(
                grpc.StatusCode.PERMISSION_DENIED,
                f"role {role!r} may not call {_split(method)[1]}; it needs {needed} (or admin)",
            )
        return _rewrap(handler, refusal)


class UploadLimitInterceptor(grpc.ServerInterceptor):
    """Bounds the total bytes of a client-streaming call: past `max_bytes` the request stream
    raises ResourceExhausted, which the call interceptor turns into RESOURCE_EXHAUSTED."""

    def __init__(self, max_bytes: int):
        self._max_bytes = max_bytes

    def _bounded(self, requests: Iterator, method: str) -> Iterator:
        total = 0
        for request in requests:
            total += request.ByteSize() if hasattr(request, "ByteSize") else len(request)
            if total > self._max_bytes:
                raise errors.ResourceExhausted(
                    f"{_split(method)[1]}: request stream exceeds the upload limit of "
                    f"{self._max_bytes} bytes (LOOPML_MAX_UPLOAD_BYTES)"
                )
            yield request

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or not handler.request_streaming:
            return handler
        method = handler_call_details.method

        def wrap(behaviour, _streaming):
            def bounded(request_iterator, context):
                return behaviour(self._bounded(request_iterator, method), context)

            return bounded

        return _rewrap(handler, wrap)
