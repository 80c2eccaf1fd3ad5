"""Registers a search's model in the registry over gRPC (CreateModelVersion, client streaming)."""

from __future__ import annotations

from collections.abc import Iterator

from loopml.client.base import ServiceClient
from loopml.client.config import ClientConfig
from loopml.client.errors import DeadlineExceededError, UnavailableError
from loopml.common.v1 import metric_pb2, refs_pb2, schema_pb2
from loopml.common.v1 import model_pb2 as common_model_pb2
from loopml.modelkit import ModelBundle
from loopml.registry.v1 import model_pb2, registry_service_pb2_grpc
from loopml.registry.v1 import registry_service_pb2 as pb
from loopml.runtime.errors import Unavailable
from loopml.services.trainer.convert import TASK_TO_PROTO, metric_to_proto, to_value

CHUNK = 1 << 20
_TYPES = {
    "numeric": schema_pb2.COLUMN_TYPE_NUMERIC,
    "integer": schema_pb2.COLUMN_TYPE_INTEGER,
    "boolean": schema_pb2.COLUMN_TYPE_BOOLEAN,
    "categorical": schema_pb2.COLUMN_TYPE_CATEGORICAL,
    "datetime": schema_pb2.COLUMN_TYPE_DATETIME,
    "text": schema_pb2.COLUMN_TYPE_TEXT,
}


class _RegistryStub(ServiceClient):
    service = "registry"
    stub_class = registry_service_pb2_grpc.RegistryServiceStub
    full_name = "loopml.registry.v1.RegistryService"


def signature(bundle: ModelBundle) -> common_model_pb2.ModelSignature:
    message = common_model_pb2.ModelSignature(
        task=TASK_TO_PROTO[bundle.task], label_column=bundle.label_column
    )
    for column in bundle.inputs:
        message.inputs.add(name=column.name, type=_TYPES.get(column.type, 0), nullable=column.nullable)
    message.class_labels.extend(to_value(_plain(c)) for c in bundle.class_labels)
    if bundle.task == "regression":
        message.outputs.add(name="prediction", type=schema_pb2.COLUMN_TYPE_NUMERIC)
    else:
        message.outputs.add(name="prediction", type=schema_pb2.COLUMN_TYPE_CATEGORICAL)
        for label in bundle.class_labels:
            message.outputs.add(name=f"probability_{label}", type=schema_pb2.COLUMN_TYPE_NUMERIC)
    return message


def _plain(value):
    return value.item() if hasattr(value, "item") else value


class GrpcRegistry:
    def __init__(self, config: ClientConfig):
        self._config = config

    def register(
        self, name: str, artifact: bytes, sha256: str, bundle: ModelBundle, lineage: dict, description: str
    ) -> tuple[str, int]:
        header = pb.CreateModelVersionHeader(
            model_name=name,
            create_model_if_missing=True,
            sha256=sha256,
            size_bytes=len(artifact),
            flavor=model_pb2.MODEL_FLAVOR_ENSEMBLE
            if bundle.params.get("family") == "ensemble"
            else model_pb2.MODEL_FLAVOR_SKLEARN_PIPELINE,
            signature=signature(bundle),
            description=description,
            request_id=f"{lineage['search_id']}-{sha256[:16]}",
            lineage=common_model_pb2.Lineage(
                dataset=refs_pb2.DatasetRef(
                    dataset_id=lineage["dataset_id"], version=lineage["dataset_version"]
                ),
                split_id=lineage["split_id"],
                search_id=lineage["search_id"],
                trial_id=lineage["trial_id"],
                ensemble_trial_ids=lineage["ensemble_trial_ids"],
            ),
            requirements=_requirements(),
        )
        for metric, value in bundle.metrics.items():
            header.metrics.add(
                metric=metric_to_proto(metric), value=value, evaluation_set=metric_pb2.EVALUATION_SET_TEST
            )
        for key, value in bundle.params.items():
            if key != "members":
                header.params[key].CopyFrom(to_value(_plain(value)))
        for feature, importance in bundle.feature_importances.items():
            header.feature_importances.add(feature=feature, importance=importance)

        def messages() -> Iterator[pb.CreateModelVersionRequest]:
            yield pb.CreateModelVersionRequest(header=header)
            for start in range(0, len(artifact), CHUNK):
                yield pb.CreateModelVersionRequest(chunk=artifact[start : start + CHUNK])

        try:
            with _RegistryStub(self._config) as client:
                response = client.call("CreateModelVersion", messages())
        except (UnavailableError, DeadlineExceededError) as exc:  # the core retries these later
            raise Unavailable(f"registry: {exc}") from exc
        return response.model_version.model_name, response.model_version.version


def _requirements() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("scikit-learn", "xgboost", "numpy", "pandas"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            continue
    return out
