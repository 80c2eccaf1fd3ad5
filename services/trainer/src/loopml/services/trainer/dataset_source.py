"""The trainer's data source over the dataset service's gRPC API (GetDataset, DownloadDataset)."""

from __future__ import annotations

import hashlib
import io

import pandas as pd

from loopml.client.base import ServiceClient
from loopml.client.config import ClientConfig
from loopml.client.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from loopml.common.v1 import refs_pb2, schema_pb2
from loopml.dataset.v1 import dataset_pb2, dataset_service_pb2_grpc
from loopml.dataset.v1 import dataset_service_pb2 as pb
from loopml.runtime.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from loopml.services.trainer.core.datasource import ColumnInfo, DatasetInfo

_KINDS = {
    schema_pb2.COLUMN_TYPE_NUMERIC: "numeric",
    schema_pb2.COLUMN_TYPE_INTEGER: "integer",
    schema_pb2.COLUMN_TYPE_BOOLEAN: "boolean",
    schema_pb2.COLUMN_TYPE_CATEGORICAL: "categorical",
    schema_pb2.COLUMN_TYPE_DATETIME: "datetime",
    schema_pb2.COLUMN_TYPE_TEXT: "text",
    schema_pb2.COLUMN_TYPE_IDENTIFIER: "identifier",
}
_ROLES = {
    schema_pb2.COLUMN_ROLE_LABEL: "label",
    schema_pb2.COLUMN_ROLE_FEATURE: "feature",
    schema_pb2.COLUMN_ROLE_IGNORED: "ignored",
    schema_pb2.COLUMN_ROLE_ID: "id",
    schema_pb2.COLUMN_ROLE_WEIGHT: "weight",
    schema_pb2.COLUMN_ROLE_TIME: "time",
}
_PARTS = {
    "train": dataset_pb2.SPLIT_PART_TRAIN,
    "validation": dataset_pb2.SPLIT_PART_VALIDATION,
    "test": dataset_pb2.SPLIT_PART_TEST,
}


class _DatasetStub(ServiceClient):
    service = "dataset"
    stub_class = dataset_service_pb2_grpc.DatasetServiceStub
    full_name = "loopml.dataset.v1.DatasetService"


def _domain_error(error, dataset_id: str, version: int):
    if isinstance(error, NotFoundError):
        what = f"{dataset_id}/versions/{version}" if version else dataset_id
        return NotFound("dataset", what, str(error))
    if isinstance(error, FailedPreconditionError):
        return FailedPrecondition(str(error), subject=f"datasets/{dataset_id}")
    if isinstance(error, InvalidArgumentError):
        return InvalidArgument("spec.dataset", str(error))
    return Unavailable(f"dataset service: {error}")


class GrpcDataSource:
    def __init__(self, config: ClientConfig):
        self._config = config

    def describe(self, dataset_id: str, version: int) -> DatasetInfo:
        with _DatasetStub(self._config) as client:
            try:
                response = client.call(
                    "GetDataset", pb.GetDatasetRequest(dataset_id=dataset_id, version=version)
                )
            except (NotFoundError, FailedPreconditionError, InvalidArgumentError, UnavailableError) as error:
                raise _domain_error(error, dataset_id, version) from None
        v = response.version
        columns = [
            ColumnInfo(c.name, _KINDS.get(c.type, "categorical"), _ROLES.get(c.role, "feature"))
            for c in v.columns
        ]
        return DatasetInfo(
            dataset_id=v.ref.dataset_id,
            version=v.ref.version,
            columns=columns,
            row_count=v.row_count,
            ready=v.state == dataset_pb2.DATASET_VERSION_STATE_READY,
            splits=[s.split_id for s in v.splits],
            validation_rows={s.split_id: s.validation_rows for s in v.splits},
        )

    def create_split(self, dataset_id: str, version: int, *, seed: int, stratify_column: str = "") -> str:
        """CreateSplit 75/25 (stratified by the label for classification; random when that is refused)."""
        strategies = [dataset_pb2.SPLIT_STRATEGY_STRATIFIED] if stratify_column else []
        strategies.append(dataset_pb2.SPLIT_STRATEGY_RANDOM)
        with _DatasetStub(self._config) as client:
            for strategy in strategies:
                spec = dataset_pb2.SplitSpec(
                    strategy=strategy,
                    train_ratio=0.75,
                    test_ratio=0.25,
                    seed=seed,
                    stratify_column=stratify_column if strategy != dataset_pb2.SPLIT_STRATEGY_RANDOM else "",
                )
                request = pb.CreateSplitRequest(
                    dataset=refs_pb2.DatasetRef(dataset_id=dataset_id, version=version), spec=spec
                )
                try:
                    return client.call("CreateSplit", request).split.split_id
                except InvalidArgumentError as error:
                    last = error
                    continue
                except (NotFoundError, FailedPreconditionError, UnavailableError) as error:
                    raise _domain_error(error, dataset_id, version) from None
        raise _domain_error(last, dataset_id, version)

    def load(self, dataset_id: str, version: int, split_id: str = "", part: str = "") -> pd.DataFrame:
        request = pb.DownloadDatasetRequest(
            dataset=refs_pb2.DatasetRef(dataset_id=dataset_id, version=version),
            form=pb.DATASET_FORM_CANONICAL,
            split_id=split_id,
            part=_PARTS.get(part, 0),
        )
        buffer, header = io.BytesIO(), None
        with _DatasetStub(self._config) as client:
            try:
                for message in client.stream("DownloadDataset", request, timeout=0):
                    if message.WhichOneof("payload") == "header":
                        header = message.header
                    else:
                        buffer.write(message.chunk)
            except (NotFoundError, FailedPreconditionError, InvalidArgumentError, UnavailableError) as error:
                raise _domain_error(error, dataset_id, version) from None
        data = buffer.getvalue()
        if header is not None and header.sha256 and hashlib.sha256(data).hexdigest() != header.sha256:
            raise Unavailable(f"dataset {dataset_id} v{version}: downloaded bytes do not match their sha256")
        return pd.read_parquet(io.BytesIO(data))
