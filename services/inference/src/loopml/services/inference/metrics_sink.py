"""`PredictionSink` over the metrics service's RecordPredictions."""

from __future__ import annotations

from google.protobuf import duration_pb2, timestamp_pb2

from loopml.client.base import ServiceClient
from loopml.client.config import ClientConfig
from loopml.metrics.v1 import metrics_pb2, metrics_service_pb2, metrics_service_pb2_grpc
from loopml.services.inference import convert
from loopml.services.inference.core import PredictionRecord


class _MetricsClient(ServiceClient):
    service = "metrics"
    stub_class = metrics_service_pb2_grpc.MetricsServiceStub
    full_name = metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name


def record_to_proto(record: PredictionRecord) -> metrics_pb2.PredictionRecord:
    time = timestamp_pb2.Timestamp()
    time.FromDatetime(record.time)
    latency = duration_pb2.Duration()
    latency.FromNanoseconds(int(record.latency_s * 1e9))
    message = metrics_pb2.PredictionRecord(
        request_id=record.request_id,
        model_name=record.model_name,
        model_version=record.model_version,
        time=time,
        inputs=convert.table_to_proto(record.input_frame()),
        predictions=convert.column_to_proto(record.label_column, record.prediction.predictions),
        labels=record.labels,
        latency=latency,
    )
    if record.prediction.probabilities is not None:
        message.probabilities.CopyFrom(
            convert.probabilities_to_proto(record.class_labels, record.prediction.probabilities)
        )
    return message


class MetricsPredictionSink:
    def __init__(self, config: ClientConfig, *, timeout_s: float = 10.0):
        self._client = _MetricsClient(config)
        self._timeout_s = timeout_s

    def send(self, records: list[PredictionRecord]) -> None:
        request = metrics_service_pb2.RecordPredictionsRequest(records=[record_to_proto(r) for r in records])
        self._client.call("RecordPredictions", request, timeout=self._timeout_s)

    def close(self) -> None:
        self._client.close()
