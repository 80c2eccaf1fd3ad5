"""Server interceptors: request ids, domain-error mapping, logging, metrics, and bearer-token auth.

Servicers stay thin because of these: they raise `loopml.runtime.errors` exceptions and this
module turns them into status codes; they never see tokens or request ids.
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import Callable, Iterable

import grpc
from prometheus_client import Counter, Histogram

from loopml.runtime import errors
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
    """Refuses calls without `authorization: Bearer <token>` naming an accepted token.

    Health checks and reflection stay open. Tokens are compared in constant time and never logged.
    """

    def __init__(self, tokens: Iterable[str]):
        self._tokens = tuple(t.encode() for t in tokens)
        self._deny = grpc.unary_unary_rpc_method_handler(self._refuse)

    def _accepted(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        given = token.strip().encode()
        return any(hmac.compare_digest(given, t) for t in self._tokens)

    @staticmethod
    def _refuse(request, context):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        if method.startswith(OPEN_PREFIXES):
            return continuation(handler_call_details)
        metadata = dict(handler_call_details.invocation_metadata or ())
        if self._accepted(metadata.get("authorization", "")):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        return _rewrap(handler, lambda _behaviour, streaming: self._refuse_stream if streaming else self._refuse)

    def _refuse_stream(self, request, context):
        self._refuse(request, context)
        yield  # pragma: no cover - makes this a generator like the handler it replaces
