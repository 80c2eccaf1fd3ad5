"""WatchModelEvents (resumable, shared by replicas) and webhooks."""

from __future__ import annotations

import json
import queue
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from loopml.client.registry import RegistryClient
from loopml.registry.v1 import model_pb2
from loopml.services.registry.server import make_server
from loopml.services.registry.settings import RegistrySettings

E = model_pb2.ModelEventType


def _collect(client: RegistryClient, into: queue.Queue, **kwargs):
    """Follow a watch in a thread, putting each event (then "ended", or the error) into `into`."""
    watch = client.watch(**kwargs)

    def run():
        try:
            for event in watch:
                into.put(event)
            into.put("ended")
        except Exception as exc:  # noqa: BLE001 - asserted by the test that reads the queue
            into.put(exc)

    threading.Thread(target=run, daemon=True).start()
    return watch


def _next(events: queue.Queue) -> model_pb2.ModelEvent:
    event = events.get(timeout=20)
    assert isinstance(event, model_pb2.ModelEvent), event
    return event


def test_watcher_sees_versions_and_alias_moves_and_can_resume(registry):
    client = registry.client
    client.create_model("m")
    # after_sequence=0 replays everything retained, then follows
    events: queue.Queue = queue.Queue()
    watcher = RegistryClient(registry.client.config)
    watch = _collect(watcher, events, model_name="m", after_sequence=0)
    assert _next(events).type == E.MODEL_EVENT_TYPE_MODEL_CREATED
    client.upload_version("m", b"bytes")
    created, ready_event = _next(events), _next(events)
    assert created.type == E.MODEL_EVENT_TYPE_VERSION_CREATED and created.model_version.status == 1
    assert (
        ready_event.type == E.MODEL_EVENT_TYPE_VERSION_STATUS_CHANGED
        and ready_event.model_version.status == 2
    )
    client.set_alias("m", "production", 1)
    moved = _next(events)
    assert moved.type == E.MODEL_EVENT_TYPE_ALIAS_SET
    assert (moved.alias_change.alias, moved.alias_change.version) == ("production", 1)
    assert created.sequence < ready_event.sequence < moved.sequence

    # resuming after the status change replays only the alias move
    replay = RegistryClient(registry.client.config).watch("m", after_sequence=ready_event.sequence)
    with replay:
        assert next(iter(replay)).sequence == moved.sequence

    client.delete_alias("m", "production")
    client.delete_version("m", 1)
    assert [_next(events).type for _ in range(2)] == [
        E.MODEL_EVENT_TYPE_ALIAS_DELETED,
        E.MODEL_EVENT_TYPE_VERSION_DELETED,
    ]
    watch.cancel()
    assert events.get(timeout=20) == "ended"
    watcher.close()


def test_a_second_replica_sees_the_same_events(registry, backend, serve):
    replica = serve(
        "registry-2", make_server, RegistrySettings(**backend.settings, listen_address="127.0.0.1:0")
    )
    config = registry.client.config.with_address("registry", replica.address)
    events: queue.Queue = queue.Queue()
    watcher = RegistryClient(config)
    watch = _collect(watcher, events, types=[E.MODEL_EVENT_TYPE_ALIAS_SET], after_sequence=0)
    registry.client.upload_version("m", b"x", create_model_if_missing=True)
    registry.client.set_alias("m", "production", 1)  # through the first replica
    event = _next(events)
    assert event.type == E.MODEL_EVENT_TYPE_ALIAS_SET and event.model_name == "m"
    watch.cancel()
    watcher.close()


class _Hook(BaseHTTPRequestHandler):
    received: queue.Queue
    fail_first: list

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.fail_first:
            self.fail_first.pop()
            self.send_response(503)
        else:
            self.received.put(json.loads(body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhooks_are_delivered_with_retries(backend, serve):
    received: queue.Queue = queue.Queue()
    handler = type("Hook", (_Hook,), {"received": received, "fail_first": [1]})
    http = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        settings = RegistrySettings(
            **backend.settings,
            listen_address="127.0.0.1:0",
            webhook_urls=f"http://127.0.0.1:{http.server_port}/hook",
            webhook_backoff_s=0.05,
        )
        serve("registry", make_server, settings)
        client = RegistryClient(serve.served.client_config())
        client.create_model("hooked")
        first = received.get(timeout=20)  # delivered on the second attempt
        assert first["type"] == "MODEL_EVENT_TYPE_MODEL_CREATED" and first["model_name"] == "hooked"
        assert first["model"]["name"] == "hooked"
        client.close()
    finally:
        http.shutdown()


def test_resuming_from_before_the_retained_events_is_out_of_range(backend, serve):
    import time

    from loopml.client.errors import LoopmlClientError

    settings = RegistrySettings(**backend.settings, listen_address="127.0.0.1:0", event_retention_s=0.4)
    serve("registry", make_server, settings)
    client = RegistryClient(serve.served.client_config())
    client.create_model("m")  # events 1 and 2, pruned after 0.4 s
    client.create_model("m2")
    deadline = time.monotonic() + 30
    while True:
        try:
            with client.watch(after_sequence=1) as watch:
                next(iter(watch))  # replays event 2 while it is still retained
        except LoopmlClientError as error:
            assert error.code == "OUT_OF_RANGE" and "re-read the state" in error.message
            break
        assert time.monotonic() < deadline, "old events were never pruned"
        time.sleep(0.1)
    with client.watch(after_sequence=0) as watch:  # 0: everything still retained, then new events
        client.create_model("n")
        assert next(iter(watch)).model_name == "n"
    client.close()


def test_open_watches_end_with_unavailable_when_the_server_stops(local_backend, serve):
    settings = RegistrySettings(**local_backend.settings, listen_address="127.0.0.1:0", shutdown_grace_s=60)
    server = serve("registry", make_server, settings)
    client = RegistryClient(serve.served.client_config())
    client.create_model("m")
    events: queue.Queue = queue.Queue()
    _collect(client, events, after_sequence=0)
    assert _next(events).type == E.MODEL_EVENT_TYPE_MODEL_CREATED  # the watch is open
    stopper = threading.Thread(target=server.stop)  # the settings' grace: 60 s
    stopper.start()
    ended = events.get(timeout=30)
    # UNAVAILABLE from the registry, not CANCELLED by the end of the grace period
    assert getattr(ended, "code", None) == "UNAVAILABLE", ended
    stopper.join()
    client.close()
