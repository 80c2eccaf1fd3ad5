"""The prediction log as the metrics service receives it, over a real server: every answered request
is logged unless its call metadata says `loopml-log-prediction: false`."""

from __future__ import annotations

import threading
import time
from functools import partial

import grpc
import numpy as np
import pytest

from loopml.client.errors import from_rpc_error
from loopml.oip.v2 import open_inference_pb2 as oip
from tests.inference import models

NOT_LOGGED = (("loopml-log-prediction", "false"),)


class RecordingSink:
    """Stands where the metrics service's RecordPredictions is: keeps every record delivered."""

    def __init__(self):
        self._lock = threading.Lock()
        self._records = []

    def send(self, records) -> None:
        with self._lock:
            self._records.extend(records)

    def request_ids(self) -> list[str]:
        with self._lock:
            return [r.request_id for r in self._records]


@pytest.fixture
def logged(serve, source, local_backend):
    from loopml.client.inference import InferenceClient
    from loopml.services.inference.server import InferenceDeps, make_server
    from loopml.services.inference.settings import InferenceSettings

    source.add_version("xgb", models.xgb_classifier())
    sink = RecordingSink()
    settings = InferenceSettings(
        **local_backend.settings,
        listen_address="127.0.0.1:0",
        prediction_log_batch_size=1,
    )
    serve("inference", partial(make_server, deps=InferenceDeps(source=source, sink=sink)), settings)
    client = InferenceClient(serve.served.client_config())
    yield client, sink
    client.close()


def _infer_request(request_id: str) -> oip.ModelInferRequest:
    features = np.random.default_rng(3).normal(size=(2, 4)).astype(np.float32)
    request = oip.ModelInferRequest(model_name="xgb", model_version="1", id=request_id)
    request.inputs.add(name="features", datatype="FP32", shape=[2, 4])
    request.raw_input_contents.append(features.tobytes())
    return request


def _wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def test_opted_out_requests_are_answered_but_not_logged(logged):
    client, sink = logged
    quiet = client.predict("churn", models.rows(), request_id="quiet-predict", log_prediction=False)
    assert quiet.request_id == "quiet-predict" and len(quiet.predictions) == 3
    streamed = list(
        client.predict_stream(
            [
                client.predict_request("churn", models.rows(2), request_id=f"quiet-stream-{i}")
                for i in range(2)
            ],
            log_prediction=False,
        )
    )
    assert [r.request_id for r in streamed] == ["quiet-stream-0", "quiet-stream-1"]
    answer = client.oip.ModelInfer(_infer_request("quiet-infer"), metadata=NOT_LOGGED, timeout=10)
    assert answer.id == "quiet-infer" and list(answer.outputs[0].shape) == [2]

    # The same calls without the metadata are logged; the log is FIFO, so once the last logged
    # record has arrived every earlier one has too.
    client.predict("churn", models.rows(), request_id="live-predict")
    list(client.predict_stream([client.predict_request("churn", models.rows(2), request_id="live-stream")]))
    client.oip.ModelInfer(_infer_request("live-infer"), timeout=10)
    client.oip.ModelInfer(
        _infer_request("live-explicit"), metadata=(("loopml-log-prediction", "TRUE"),), timeout=10
    )
    _wait_for(lambda: "live-explicit" in sink.request_ids())
    assert sink.request_ids() == ["live-predict", "live-stream", "live-infer", "live-explicit"]


def test_an_unreadable_opt_out_value_is_refused_naming_the_metadata(logged):
    client, sink = logged
    bad = (("loopml-log-prediction", "no"),)
    refusals = []
    with pytest.raises(grpc.RpcError) as infer_error:
        client.oip.ModelInfer(_infer_request("typo"), metadata=bad, timeout=10)
    refusals.append(from_rpc_error(infer_error.value))
    with pytest.raises(grpc.RpcError) as stream_error:
        list(client.stub.PredictStream(iter([]), metadata=bad, timeout=10))
    refusals.append(from_rpc_error(stream_error.value))
    for refusal in refusals:
        assert refusal.code == "INVALID_ARGUMENT"
        assert refusal.field_violations[0].field == "metadata.loopml-log-prediction"
    client.predict("churn", models.rows(1), request_id="after")
    _wait_for(lambda: "after" in sink.request_ids())
    assert sink.request_ids() == ["after"]
