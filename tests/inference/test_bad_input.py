"""Every kind of bad request answers with the right code and names the field; the server goes on."""

from __future__ import annotations

import grpc
import pytest

from loopml.client.errors import LoopmlClientError
from loopml.common.v1 import value_pb2
from loopml.inference.v1 import prediction_service_pb2 as pb
from loopml.oip.v2 import open_inference_pb2 as oip
from tests.inference import models

BAD_COLUMNS = [
    ("missing", lambda c: c.pop("income"), "inputs.income"),
    ("extra", lambda c: c.update(extra=[1.0, 2.0, 3.0]), "inputs.extra"),
    ("misnamed", lambda c: c.update(Income=c.pop("income")), "inputs.Income"),
    ("wrong-type", lambda c: c.update(income=["a", "b", "c"]), "inputs.income"),
    ("nan-forbidden", lambda c: c.update(income=[1.0, float("nan"), 2.0]), "inputs.income"),
    ("missing-value-forbidden", lambda c: c.update(income=[1.0, None, 2.0]), "inputs.income"),
    ("unequal-length", lambda c: c.update(age=[1.0]), "inputs.age"),
]


def _error(call) -> LoopmlClientError:
    with pytest.raises(LoopmlClientError) as error:
        call()
    return error.value


@pytest.mark.parametrize(
    ("change", "field"), [(c, f) for _, c, f in BAD_COLUMNS], ids=[i for i, _, _ in BAD_COLUMNS]
)
def test_bad_columns(inference, change, field):
    _, client = inference
    columns = models.rows()
    change(columns)
    request = client.predict_request("churn", models.rows())
    table = value_pb2.Table(row_count=3)
    for name, values in columns.items():
        table.columns.append(_typed(name, values))
    request.inputs.CopyFrom(table)
    error = _error(lambda: client.call("Predict", request))
    assert error.code == "INVALID_ARGUMENT"
    assert error.field_violations[0].field == field
    assert client.predict("churn", models.rows()).model_version == 1  # still serving


def _typed(name, values) -> value_pb2.Column:
    column = value_pb2.Column(name=name)
    present = [v for v in values if v is not None]
    if all(isinstance(v, str) for v in present):
        column.string_values.values.extend(v or "" for v in values)
    else:
        column.double_values.values.extend(0.0 if v is None else float(v) for v in values)
    column.null_indices.extend(i for i, v in enumerate(values) if v is None)
    return column


@pytest.mark.parametrize(
    ("options", "resource"),
    [
        ({"model": "nope"}, "nope"),
        ({"model": "churn", "version": 7}, "churn/7"),
        ({"model": "churn", "alias": "staging"}, "churn@staging"),
    ],
    ids=["model", "version", "alias"],
)
def test_unknown_model_version_alias_is_not_found(inference, options, resource):
    _, client = inference
    name = options.pop("model")
    error = _error(lambda: client.predict(name, models.rows(), **options))
    assert error.code == "NOT_FOUND" and resource in error.message
    oip_version = str(options.get("version") or options.get("alias") or "")
    with pytest.raises(grpc.RpcError) as failure:
        client.oip.ModelInfer(
            oip.ModelInferRequest(
                model_name=name,
                model_version=oip_version,
                inputs=[
                    oip.ModelInferRequest.InferInputTensor(
                        name="age",
                        datatype="FP64",
                        shape=[1],
                        contents=oip.InferTensorContents(fp64_contents=[1.0]),
                    )
                ],
            )
        )
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND


def test_request_over_the_row_limit(inference):
    _, client = inference
    error = _error(lambda: client.predict("churn", models.rows(1001)))
    assert error.code == "RESOURCE_EXHAUSTED" and "limit is 1000 rows" in error.message
    assert len(client.predict("churn", models.rows(1000)).predictions) == 1000


def test_request_over_the_message_size_limit(inference):
    _, client = inference
    big = {"age": [1.0] * 20_000, "income": [2.0] * 20_000, "city": ["x" * 10] * 20_000}
    error = _error(lambda: client.predict("churn", big))
    assert error.code == "RESOURCE_EXHAUSTED" and str(256 * 1024) in error.message
    assert client.predict("churn", models.rows()).model_version == 1


def test_bad_model_reference_and_batching(inference):
    _, client = inference
    error = _error(lambda: client.call("Predict", pb.PredictRequest()))
    assert error.code == "INVALID_ARGUMENT" and error.field_violations[0].field == "model.name"
    request = pb.LoadModelRequest(model=pb.PredictRequest().model)
    request.model.name = "churn"
    request.batching.max_batch_size = -1
    error = _error(lambda: client.call("LoadModel", request))
    assert error.field_violations[0].field == "batching.max_batch_size"
    error = _error(lambda: client.call("ListLoadedModels", pb.ListLoadedModelsRequest(page_token="zz")))
    assert error.field_violations[0].field == "page_token"


def test_empty_request_and_rows_the_model_refuses(inference, source):
    from loopml.modelkit import ColumnSpec, ModelBundle
    from tests.inference.models import PickyEstimator

    _, client = inference
    error = _error(lambda: client.predict("churn", {"age": [], "income": [], "city": []}))
    assert error.code == "INVALID_ARGUMENT" and error.field_violations[0].field == "inputs"

    source.add_version(
        "picky", ModelBundle(PickyEstimator(), "binary", [ColumnSpec("x", "numeric")], "y", ["a", "b"])
    )
    assert client.predict("picky", {"x": [0.0]}, version=1).predictions == ["a"]
    error = _error(lambda: client.predict("picky", {"x": [5.0]}, version=1))
    assert error.code == "INVALID_ARGUMENT" and "x must be 0" in error.message
