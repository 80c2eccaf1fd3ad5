"""The core's collaborators over gRPC: the registry (ModelCatalog), the dataset service
(ReferenceSource), and HTTP webhooks. The Retrainer is in `retrainer.py`."""

from __future__ import annotations

import json
import urllib.request

from loopml.client.base import ServiceClient
from loopml.client.config import ClientConfig
from loopml.client.errors import LoopmlClientError
from loopml.common.v1 import refs_pb2, schema_pb2
from loopml.dataset.v1 import dataset_pb2, dataset_service_pb2, dataset_service_pb2_grpc
from loopml.registry.v1 import registry_service_pb2, registry_service_pb2_grpc
from loopml.runtime import errors
from loopml.services.metrics import convert as cv
from loopml.services.metrics.core import drift
from loopml.services.metrics.core.model import VersionInfo

_TASKS = {
    schema_pb2.TASK_TYPE_BINARY: "binary",
    schema_pb2.TASK_TYPE_MULTICLASS: "multiclass",
    schema_pb2.TASK_TYPE_REGRESSION: "regression",
}
_NUMERIC = {schema_pb2.COLUMN_TYPE_NUMERIC, schema_pb2.COLUMN_TYPE_INTEGER, schema_pb2.COLUMN_TYPE_DATETIME}
_TYPE_NAMES = {v: k for k, v in cv.COLUMN_TYPES.items()}


def _domain_error(exc: LoopmlClientError, what: str) -> errors.LoopmlError:
    if exc.code == "NOT_FOUND":
        return errors.NotFound(exc.resource_type or what, exc.resource_name or what, exc.message)
    if exc.code == "FAILED_PRECONDITION":
        return errors.FailedPrecondition(f"{what}: {exc.message}")
    if exc.code == "INVALID_ARGUMENT":
        return errors.FailedPrecondition(f"{what} rejected the request: {exc.message}")
    return errors.Unavailable(f"{what} failed: {exc.code}: {exc.message}")


class _Registry(ServiceClient):
    service = "registry"
    stub_class = registry_service_pb2_grpc.RegistryServiceStub
    full_name = "loopml.registry.v1.RegistryService"


class _Dataset(ServiceClient):
    service = "dataset"
    stub_class = dataset_service_pb2_grpc.DatasetServiceStub
    full_name = "loopml.dataset.v1.DatasetService"


def version_info(mv) -> VersionInfo:
    sig = mv.signature
    return VersionInfo(
        model_name=mv.model_name,
        version=mv.version,
        task=_TASKS.get(sig.task, ""),
        inputs=tuple(c.name for c in sig.inputs),
        class_labels=tuple(cv.value(v) for v in sig.class_labels),
        label_column=sig.label_column,
        training_metrics=tuple(cv.score(s) for s in mv.metrics),
        dataset_id=mv.lineage.dataset.dataset_id,
        dataset_version=mv.lineage.dataset.version,
        split_id=mv.lineage.split_id,
        search_id=mv.lineage.search_id,
    )


class GrpcModelCatalog:
    """ModelCatalog over the registry's gRPC API."""

    def __init__(self, config: ClientConfig):
        self._client = _Registry(config)

    def _resolve(self, ref: refs_pb2.ModelRef):
        try:
            resp = self._client.call("ResolveModel", registry_service_pb2.ResolveModelRequest(model=ref))
        except LoopmlClientError as exc:
            raise _domain_error(exc, "registry") from None
        return resp.model_version

    def version(self, model_name: str, version: int) -> VersionInfo:
        ref = (
            refs_pb2.ModelRef(name=model_name, version=version)
            if version
            else refs_pb2.ModelRef(name=model_name, latest=True)
        )
        return version_info(self._resolve(ref))

    def resolve_alias(self, model_name: str, alias: str) -> VersionInfo:
        return version_info(self._resolve(refs_pb2.ModelRef(name=model_name, alias=alias or "production")))

    def signature_types(self, model_name: str, version: int) -> dict:
        mv = self._resolve(refs_pb2.ModelRef(name=model_name, version=version))
        return {c.name: c for c in mv.signature.inputs}

    def set_alias(self, model_name: str, alias: str, version: int, reason: str) -> None:
        try:
            self._client.call(
                "SetAlias",
                registry_service_pb2.SetAliasRequest(
                    model_name=model_name, alias=alias, version=version, reason=reason
                ),
            )
        except LoopmlClientError as exc:
            raise _domain_error(exc, "registry") from None

    def close(self) -> None:
        self._client.close()


class GrpcReferenceSource:
    """ReferenceSource: the registry gives the lineage, the dataset service the train profile."""

    def __init__(self, config: ClientConfig, catalog: GrpcModelCatalog):
        self._dataset = _Dataset(config)
        self._catalog = catalog

    def reference_for(
        self,
        model_name: str,
        version: int,
        dataset_id: str = "",
        dataset_version: int = 0,
        split_id: str = "",
    ) -> drift.Reference:
        info = self._catalog.version(model_name, version)
        signature = self._catalog.signature_types(model_name, info.version)
        dataset_id = dataset_id or info.dataset_id
        if not dataset_id:
            raise errors.FailedPrecondition(
                f"{model_name} version {info.version} has no training dataset in its "
                "lineage; give reference_dataset",
                subject=f"model {model_name}",
            )
        dataset_version = dataset_version or (info.dataset_version if dataset_id == info.dataset_id else 0)
        split_id = split_id or (info.split_id if dataset_id == info.dataset_id else "")
        request = dataset_service_pb2.GetDatasetProfileRequest(
            dataset=refs_pb2.DatasetRef(dataset_id=dataset_id, version=dataset_version),
            split_id=split_id,
            part=dataset_pb2.SPLIT_PART_TRAIN if split_id else dataset_pb2.SPLIT_PART_UNSPECIFIED,
        )
        try:
            profile = self._dataset.call("GetDatasetProfile", request).profile
        except LoopmlClientError as exc:
            raise _domain_error(exc, "dataset service") from None
        features, prediction = {}, None
        for col in profile.columns:
            ref = column_reference(col, signature.get(col.name))
            if col.name in signature:
                features[col.name] = ref
            elif col.name == info.label_column:
                prediction = ref
        return drift.Reference(
            profile.row_count,
            features,
            prediction,
            profile.dataset.dataset_id,
            profile.dataset.version,
            profile.split_id,
        )


def column_reference(col, signature_column=None) -> drift.FeatureReference:
    kind = drift.NUMERIC if col.type in _NUMERIC else drift.CATEGORICAL
    categories = tuple(str(cv.value(v)) for v in signature_column.categories) if signature_column else ()
    return drift.FeatureReference(
        name=col.name,
        kind=kind,
        type_name=_TYPE_NAMES.get(col.type, ""),
        count=col.count,
        missing=col.missing_count,
        quantiles=tuple((q.quantile, q.value) for q in col.quantiles),
        histogram_edges=tuple(col.histogram.bin_edges),
        histogram_counts=tuple(col.histogram.counts),
        top_values=tuple((str(cv.value(vc.value)), vc.count) for vc in col.top_values),
        known_categories=categories,
    )


def post_webhook(url: str, headers: dict[str, str], payload: dict, timeout_s: float = 5.0) -> str:
    """POST the alert as JSON; returns "HTTP <status>", raises on a failed call."""
    body = json.dumps(payload).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - http(s) checked at creation
        return f"HTTP {response.status}"
