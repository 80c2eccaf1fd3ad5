"""Per-call cost of the runtime's shared server interceptors (request id, error mapping, auth, metrics).

    .venv/bin/python bench/grpc_overhead.py --calls 20000

Two figures, each for a trivial unary RPC (raw bytes echoed back):

`interceptors`: no network. The interceptor `ServiceServer` installs (bearer tokens with roles,
request ids, error mapping, metrics, the upload limit) is run the way grpc runs it, then the
handler it returns is called with a minimal servicer context; the figure is the CPU time per call
minus the same loop over the bare handler: what the interceptor adds to every call's server work.
`loopback`: sequential calls over a real loopback channel, client and server in this process, to
a bare `grpc.server` (same thread pool, options and concurrency limit) and to a `ServiceServer`
with the same handler (with and without tokens). Wall and process CPU microseconds per call
(median of 5 interleaved rounds); the difference is the interceptor, health/reflection handler
lookup, and noise. `--only loopback` also runs against an older runtime on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent import futures
from pathlib import Path

import grpc

from loopml.runtime.grpcserver import ServiceRegistration, ServiceServer, channel_options
from loopml.runtime.settings import ServiceSettings

SERVICE = "loopml.bench.v1.EchoService"
METHOD = f"/{SERVICE}/Predict"
TOKEN = "bench-token"


def _identity(data: bytes) -> bytes:
    return data


def _echo(request: bytes, _context) -> bytes:
    return request


def _handlers() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        SERVICE, {"Predict": grpc.unary_unary_rpc_method_handler(_echo, _identity, _identity)}
    )


class _Details(grpc.HandlerCallDetails):
    def __init__(self, method: str, metadata: tuple):
        self.method = method
        self.invocation_metadata = metadata


class _Context:
    """The part of grpc.ServicerContext the interceptors touch on a successful call."""

    def __init__(self, metadata: tuple):
        self._metadata = metadata

    def invocation_metadata(self):
        return self._metadata

    def set_trailing_metadata(self, _metadata) -> None:
        pass

    def code(self):
        return None


def _chain(interceptors, query):
    def at(index, details):
        if index == len(interceptors):
            return query(details)
        return interceptors[index].intercept_service(lambda d: at(index + 1, d), details)

    return lambda details: at(0, details)


def _cpu_per_call(call, calls: int, repeats: int = 5) -> float:
    """Median over `repeats` runs of the thread CPU microseconds per call."""
    runs = []
    for _ in range(repeats):
        start = time.thread_time()
        for _ in range(calls):
            call()
        runs.append((time.thread_time() - start) / calls * 1e6)
    return statistics.median(runs)


def interceptors(calls: int) -> None:
    from loopml.runtime.grpcserver.interceptors import CallInterceptor

    generic = _handlers()
    metadata = (("authorization", f"Bearer {TOKEN}"), ("user-agent", "bench"))
    details, context = _Details(METHOD, metadata), _Context(metadata)

    def bare():
        generic.service(details).unary_unary(b"x", context)

    stacks = {
        "no tokens": [CallInterceptor(1 << 30)],
        "tokens": [CallInterceptor(1 << 30, {TOKEN: "predict"})],
    }
    base = _cpu_per_call(bare, calls)
    print(f"interceptors  bare handler lookup + call: {base:.1f} us CPU/call")
    for label, stack in stacks.items():
        chained = _chain(stack, generic.service)

        def intercepted(chained=chained):
            chained(details).unary_unary(b"x", context)

        cost = _cpu_per_call(intercepted, calls)
        print(f"interceptors  {label:9s}: {cost:.1f} us CPU/call, {cost - base:.1f} us over the bare handler")


def _loop(channel, calls: int, metadata: tuple) -> tuple[float, float]:
    stub = channel.unary_unary(METHOD, _identity, _identity)
    for _ in range(200):  # warm-up
        stub(b"x", metadata=metadata)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        stub(b"x", metadata=metadata)
    return (time.perf_counter() - wall) / calls * 1e6, (time.process_time() - cpu) / calls * 1e6


def loopback(calls: int, rounds: int = 5) -> None:
    defaults = ServiceSettings(data_dir=Path(tempfile.gettempdir()))
    bare = grpc.server(  # the thread pool, options and concurrency limit ServiceServer uses
        futures.ThreadPoolExecutor(max_workers=defaults.max_workers),
        options=channel_options(defaults.max_message_bytes),
        maximum_concurrent_rpcs=defaults.max_concurrent_rpcs or None,
    )
    bare.add_generic_rpc_handlers((_handlers(),))
    port = bare.add_insecure_port("127.0.0.1:0")
    bare.start()
    servers = {"bare grpc.server": (f"127.0.0.1:{port}", (), bare.stop)}
    registration = ServiceRegistration(
        SERVICE, lambda _s, server: server.add_generic_rpc_handlers((_handlers(),)), None
    )
    with tempfile.TemporaryDirectory() as tmp:
        for label, tokens in (("ServiceServer", ""), ("ServiceServer+tokens", f"predict:{TOKEN}")):
            settings = ServiceSettings(data_dir=Path(tmp), listen_address="127.0.0.1:0", auth_tokens=tokens)
            server = ServiceServer(settings, [registration]).start()
            metadata = (("authorization", f"Bearer {TOKEN}"),) if tokens else ()
            servers[label] = (server.address, metadata, server.stop)
        channels = {label: grpc.insecure_channel(address) for label, (address, _, _) in servers.items()}
        runs: dict[str, list[tuple[float, float]]] = {label: [] for label in servers}
        for _ in range(rounds):  # interleaved, so a busier moment on a shared box hits every server
            for label, (_, metadata, _) in servers.items():
                runs[label].append(_loop(channels[label], calls // rounds, metadata))
        for label, measured in runs.items():
            wall = statistics.median(w for w, _ in measured)
            cpu = statistics.median(c for _, c in measured)
            print(
                f"loopback      {label:21s}: {wall:6.1f} us wall/call, {cpu:6.1f} us CPU/call (client+server)"
            )
            channels[label].close()
        for _, _, stop in servers.values():
            stop(0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--only", choices=("interceptors", "loopback"))
    args = parser.parse_args()
    if args.only != "loopback":
        interceptors(args.calls)
    if args.only != "interceptors":
        loopback(max(args.calls // 4, 1000))


if __name__ == "__main__":
    main()
