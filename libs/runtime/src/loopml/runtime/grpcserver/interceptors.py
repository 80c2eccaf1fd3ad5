"""The server interceptor: bearer-token auth, request ids, domain-error mapping, logging, metrics
and the upload limit.

Servicers stay thin because of it: they raise `loopml.runtime.errors` exceptions and this module
turns them into status codes; they never see tokens or request ids.

It runs on every call, so everything that depends only on the method (the wrapped handler, the
roles it needs, its refusals, its metric series) is built on the method's first call and cached;
what is left per call is the token check, the request id, the status and the counters.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
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


def _rewrap(
    handler: grpc.RpcMethodHandler, wrap: Callable, request_deserializer=None
) -> grpc.RpcMethodHandler:
    """A copy of `handler` whose behaviour is `wrap(behaviour, streaming_response)` (and whose
    request deserializer is `request_deserializer` when given)."""
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
        request_deserializer=request_deserializer or handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _split(method: str) -> tuple[str, str]:
    _, service, name = method.split("/", 2) if method.count("/") >= 2 else ("", "", method)
    return service, name


def new_request_id() -> str:
    """32 hex digits, the same as `uuid.uuid4().hex` (version and variant bits set) at a third of
    its cost."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


class BearerTokens:
    """`authorization: Bearer <token>` headers -> roles. `tokens` is {token: role}, or plain
    tokens (all admin). Tokens are compared in constant time and never logged."""

    def __init__(self, tokens: Iterable[str] | Mapping[str, str]):
        roles = dict(tokens) if isinstance(tokens, Mapping) else {t: auth.ADMIN for t in tokens}
        self._tokens = tuple((t.encode(), role) for t, role in roles.items())

    def role(self, metadata) -> str | None:
        """The role of the call's token, or None for a missing or unknown token."""
        header = dict(metadata or ()).get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        given = token.strip().encode()
        role = None
        for accepted, accepted_role in self._tokens:  # no early exit: same time for every token
            if hmac.compare_digest(given, accepted):
                role = accepted_role
        return role


def _refusal(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of `handler`'s shape that aborts every call with `code`."""

    def unary(request, context):
        context.abort(code, message)

    def stream(request, context):
        context.abort(code, message)
        yield  # pragma: no cover - makes this a generator like the handler it replaces

    return _rewrap(handler, lambda _behaviour, streaming: stream if streaming else unary)


class _Method:
    """What the interceptor needs to serve one method, built on its first call."""

    def __init__(
        self, method: str, original: grpc.RpcMethodHandler, served: grpc.RpcMethodHandler, open_: bool
    ):
        self.original = original
        self.served = served
        self.name = _split(method)[1]
        #: None for health and reflection, which need no token.
        self.allowed = None if open_ else auth.roles_allowed(method)
        self._refusals: dict[str | None, grpc.RpcMethodHandler] = {}

    def refusal(self, role: str | None) -> grpc.RpcMethodHandler:
        """UNAUTHENTICATED without a valid token, PERMISSION_DENIED for a role that may not call."""
        refused = self._refusals.get(role)
        if refused is None:
            if role is None:
                code, message = grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token"
            else:
                needed = " or ".join(sorted(self.allowed - {auth.ADMIN})) or auth.ADMIN
                code = grpc.StatusCode.PERMISSION_DENIED
                message = f"role {role!r} may not call {self.name}; it needs {needed} (or admin)"
            refused = self._refusals[role] = _refusal(self.original, code, message)
        return refused


class _Tracker:
    """Per-method bookkeeping of a call: request id, status of failures, metrics and the debug log."""

    def __init__(self, method: str):
        self.method = method
        self.service, self.name = _split(method)
        self._seconds = RPC_SECONDS.labels(self.service, self.name)
        self._handled: dict[str, Counter] = {}  # status name -> series, created on first use
        self._ok = self._handled["OK"] = RPCS_HANDLED.labels(self.service, self.name, "OK")

    @staticmethod
    def begin(context):
        # The request id travels back in trailing metadata: sending headers early would commit the
        # call and stop clients from transparently retrying an UNAVAILABLE answer.
        request_id = ""
        for key, value in context.invocation_metadata() or ():
            if key == REQUEST_ID_HEADER:
                request_id = value  # the last one wins, as in a dict of the metadata
        request_id = request_id or new_request_id()
        token = request_id_var.set(request_id)
        context.set_trailing_metadata(((REQUEST_ID_HEADER, request_id),))
        return token, request_id, time.perf_counter()

    def fail(self, exc: BaseException, context, request_id: str) -> None:
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
        log.exception("unhandled error in %s", self.method, extra={"method": self.method})
        context.abort_with_status(internal_status(request_id, request_metadata))
        raise AssertionError("unreachable")  # abort_with_status always raises

    def end(self, token, completed: bool, start: float, context) -> None:
        elapsed = time.perf_counter() - start
        status = context.code()
        code_name = status.name if status is not None else ("OK" if completed else "CANCELLED")
        handled = self._handled.get(code_name)
        if handled is None:
            handled = self._handled[code_name] = RPCS_HANDLED.labels(self.service, self.name, code_name)
        handled.inc()
        self._seconds.observe(elapsed)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "handled %s",
                self.name,
                extra={
                    "method": f"{self.service}/{self.name}",
                    "code": code_name,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
        request_id_var.reset(token)

    def succeeded(self, token, start: float, context) -> None:
        """`end` of a unary call whose handler returned: the common case, with fewer steps."""
        if context.code() is not None or log.isEnabledFor(logging.DEBUG):
            self.end(token, True, start, context)  # the handler set a status itself, or logging
            return
        self._seconds.observe(time.perf_counter() - start)
        self._ok.inc()
        request_id_var.reset(token)

    def wrap(self, behaviour, streaming_response: bool):
        """`behaviour` with a request id, error mapping, metrics and logging around every call."""
        begin, fail, end = self.begin, self.fail, self.end
        if streaming_response:

            def stream(request, context):
                token, request_id, start = begin(context)
                completed = False
                try:
                    yield from behaviour(request, context)
                    completed = True
                except BaseException as exc:  # noqa: BLE001 - every path must set a status
                    fail(exc, context, request_id)
                finally:
                    end(token, completed, start, context)

            return stream

        succeeded = self.succeeded

        def unary(request, context):
            token, request_id, start = begin(context)
            try:
                response = behaviour(request, context)
            except BaseException as exc:  # noqa: BLE001 - every path must set a status
                try:
                    fail(exc, context, request_id)
                finally:
                    end(token, False, start, context)
            succeeded(token, start, context)
            return response

        return unary


class CallInterceptor(grpc.ServerInterceptor):
    """The one interceptor every `ServiceServer` installs (one, so grpc runs a single link per call).

    - With `tokens`, refuses calls without `authorization: Bearer <token>` naming an accepted token
      (UNAUTHENTICATED), or whose token's role may not call the method (PERMISSION_DENIED; the table
      is `loopml.runtime.grpcserver.auth.roles_allowed`). Refused calls are not counted.
    - Gives every call a request id (the client's `x-request-id` or a new one) in trailing metadata
      and in the logs, maps domain errors to statuses with `google.rpc.Status` details (anything
      else becomes INTERNAL and is logged), counts and times the call.
    - Bounds the total bytes of a client-streaming call: past `max_upload_bytes` the request stream
      raises ResourceExhausted, which becomes RESOURCE_EXHAUSTED.

    Health checks and reflection need no token and get neither request ids nor metrics.
    """

    def __init__(self, max_upload_bytes: int, tokens: Iterable[str] | Mapping[str, str] | None = None):
        self._max_upload_bytes = max_upload_bytes
        self._tokens = BearerTokens(tokens) if tokens else None
        self._methods: dict[str, _Method] = {}

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        served = self._methods.get(method)
        if served is None or served.original is not handler:
            served = self._methods[method] = self._prepare(method, handler)
        if self._tokens is not None and served.allowed is not None:
            role = self._tokens.role(handler_call_details.invocation_metadata)
            if role not in served.allowed:
                return served.refusal(role)
        return served.served

    def _prepare(self, method: str, handler: grpc.RpcMethodHandler) -> _Method:
        open_ = method.startswith(OPEN_PREFIXES)
        served = handler
        if handler.request_streaming:
            served = self._bounded(handler, method)
        if not open_:
            served = _rewrap(served, _Tracker(method).wrap)
        return _Method(method, handler, served, open_)

    def _bounded(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """`handler` reading a request stream that raises ResourceExhausted past the upload limit.

        Each message is counted at its wire size: the deserializer hands back (message, size),
        so nothing is serialized again to measure it (for 1 MiB dataset chunks that cost as much
        as parsing them)."""
        max_bytes = self._max_upload_bytes
        name = _split(method)[1]
        deserialize = handler.request_deserializer

        def sized(raw: bytes):
            return (deserialize(raw) if deserialize is not None else raw), len(raw)

        def bounded(requests: Iterator) -> Iterator:
            total = 0
            for request, size in requests:
                total += size
                if total > max_bytes:
                    raise errors.ResourceExhausted(
                        f"{name}: request stream exceeds the upload limit of "
                        f"{max_bytes} bytes (LOOPML_MAX_UPLOAD_BYTES)"
                    )
                yield request

        def wrap(behaviour, _streaming):
            def call(request_iterator, context):
                return behaviour(bounded(request_iterator), context)

            return call

        return _rewrap(handler, wrap, request_deserializer=sized)
