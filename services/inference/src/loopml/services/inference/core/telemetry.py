"""Prometheus metrics of the inference service, per model and version.

Defined once per process (prometheus_client's default registry), shared by every server in it; the
server's `prometheus_address` exposes them over HTTP.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUESTS = Counter(
    "loopml_inference_requests_total",
    "Prediction requests answered, by model and version.",
    ["model", "version"],
)
ROWS = Counter("loopml_inference_rows_total", "Rows predicted, by model and version.", ["model", "version"])
ERRORS = Counter(
    "loopml_inference_request_errors_total",
    "Prediction requests refused or failed, by model and code.",
    ["model", "code"],
)
LATENCY = Histogram(
    "loopml_inference_request_duration_seconds",
    "Time to answer a prediction request in the core (validation, queue, predict).",
    ["model", "version"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "loopml_inference_batch_size_rows",
    "Rows per model call after dynamic batching.",
    ["model", "version"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
QUEUE_TIME = Histogram(
    "loopml_inference_queue_seconds",
    "Time a request waited in the dynamic batching queue.",
    ["model", "version"],
    buckets=LATENCY_BUCKETS,
)
RELOADS = Counter(
    "loopml_inference_reloads_total",
    "Hot reloads after an alias moved, by model and outcome.",
    ["model", "outcome"],
)
LOADED_MODELS = Gauge("loopml_inference_loaded_models", "Models loaded (deployments).")
MEMORY_BYTES = Gauge("loopml_inference_model_memory_bytes", "Estimated memory held by loaded models.")
LOG_DROPPED = Counter(
    "loopml_inference_prediction_log_dropped_total",
    "Prediction records not delivered to the metrics service (queue full or metrics down).",
)
LOG_SENT = Counter(
    "loopml_inference_prediction_log_sent_total", "Prediction records delivered to the metrics service."
)


class VersionMetrics:
    """The per-version series of one served model version, looked up once (a `labels()` lookup
    costs more than the increment itself on the request path)."""

    def __init__(self, model: str, version: str):
        self.requests = REQUESTS.labels(model, version)
        self.rows = ROWS.labels(model, version)
        self.latency = LATENCY.labels(model, version)

    def observe(self, rows: int, latency_s: float) -> None:
        self.requests.inc()
        self.rows.inc(rows)
        self.latency.observe(latency_s)
