"""The Open Inference Protocol v2 on the inference server: raw stubs, then tritonclient unchanged."""

from __future__ import annotations

import json
import struct
import subprocess
import textwrap
from pathlib import Path

import grpc
import numpy as np
import pytest

from loopml.oip.v2 import open_inference_pb2 as oip
from tests.inference import models

Tensor = oip.ModelInferRequest.InferInputTensor
TRITON_PYTHON = Path(__file__).resolve().parents[2] / ".venv-triton" / "bin" / "python"


def _bytes(strings) -> bytes:
    return b"".join(struct.pack("<I", len(s.encode())) + s.encode() for s in strings)


def _typed_request(columns, **extra) -> oip.ModelInferRequest:
    return oip.ModelInferRequest(
        model_name="churn",
        inputs=[
            Tensor(
                name="age",
                datatype="FP64",
                shape=[3],
                contents=oip.InferTensorContents(fp64_contents=columns["age"]),
            ),
            Tensor(
                name="income",
                datatype="FP32",
                shape=[3, 1],
                contents=oip.InferTensorContents(fp32_contents=columns["income"]),
            ),
            Tensor(
                name="city",
                datatype="BYTES",
                shape=[3],
                contents=oip.InferTensorContents(bytes_contents=[c.encode() for c in columns["city"]]),
            ),
        ],
        **extra,
    )


def _outputs(response: oip.ModelInferResponse) -> dict:
    found = {}
    for tensor, raw in zip(response.outputs, response.raw_output_contents, strict=True):
        if tensor.datatype == "BYTES":
            values, offset = [], 0
            while offset < len(raw):
                (size,) = struct.unpack_from("<I", raw, offset)
                values.append(raw[offset + 4 : offset + 4 + size].decode())
                offset += 4 + size
            found[tensor.name] = values
        else:
            found[tensor.name] = np.frombuffer(
                raw, dtype={"FP64": "<f8", "INT64": "<i8"}[tensor.datatype]
            ).reshape(list(tensor.shape))
    return found


def test_server_and_model_status(inference):
    _, client = inference
    stub = client.oip
    assert stub.ServerLive(oip.ServerLiveRequest()).live
    assert stub.ServerReady(oip.ServerReadyRequest()).ready
    metadata = stub.ServerMetadata(oip.ServerMetadataRequest())
    assert metadata.name == "loopml-inference" and "model_repository" in metadata.extensions
    assert not stub.ModelReady(oip.ModelReadyRequest(name="churn")).ready
    model = stub.ModelMetadata(oip.ModelMetadataRequest(name="churn"))  # loads it
    assert stub.ModelReady(oip.ModelReadyRequest(name="churn")).ready
    assert stub.ModelReady(oip.ModelReadyRequest(name="churn", version="")).ready
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [
        ("age", "FP64", [-1]),
        ("income", "FP64", [-1]),
        ("city", "BYTES", [-1]),
    ]
    assert [(t.name, t.datatype, list(t.shape)) for t in model.outputs] == [
        ("predictions", "BYTES", [-1]),
        ("probabilities", "FP64", [-1, 2]),
    ]
    assert list(model.versions) == ["1"]


def test_model_infer_typed_contents_and_requested_outputs(inference, bundles):
    _, client = inference
    columns = models.rows()
    response = client.oip.ModelInfer(_typed_request(columns, id="oip-1"))
    assert (response.model_name, response.model_version, response.id) == ("churn", "1", "oip-1")
    outputs = _outputs(response)
    want = bundles["classifier"].predict({**columns, "income": list(np.float32(columns["income"]))})
    assert outputs["predictions"] == list(want.predictions)
    np.testing.assert_allclose(outputs["probabilities"], want.probabilities, rtol=1e-5)
    only = client.oip.ModelInfer(
        _typed_request(
            columns, outputs=[oip.ModelInferRequest.InferRequestedOutputTensor(name="probabilities")]
        )
    )
    assert [t.name for t in only.outputs] == ["probabilities"]


def test_model_infer_raw_contents_and_numeric_matrix(inference, source):
    _, client = inference
    source.add_version("xgb", models.xgb_classifier())
    matrix = np.random.default_rng(3).normal(size=(5, 4)).astype(np.float32)
    response = client.oip.ModelInfer(
        oip.ModelInferRequest(
            model_name="xgb",
            model_version="1",
            inputs=[Tensor(name="features", datatype="FP32", shape=[5, 4])],
            raw_input_contents=[matrix.tobytes()],
        )
    )
    bundle = models.xgb_classifier()
    want = bundle.predict({f"f{i}": matrix[:, i] for i in range(4)})
    outputs = _outputs(response)
    assert [t.datatype for t in response.outputs] == ["INT64", "FP64"]
    assert list(outputs["predictions"]) == list(want.predictions)
    np.testing.assert_allclose(outputs["probabilities"], want.probabilities, rtol=1e-6)
    per_column = client.oip.ModelInfer(
        oip.ModelInferRequest(
            model_name="xgb",
            model_version="1",
            inputs=[Tensor(name=f"f{i}", datatype="FP32", shape=[5]) for i in range(4)],
            raw_input_contents=[np.ascontiguousarray(matrix[:, i]).tobytes() for i in range(4)],
        )
    )
    assert list(_outputs(per_column)["predictions"]) == list(want.predictions)


def _raw_city_request(raw_sizes_ok=True):
    columns = models.rows()
    income = np.asarray(columns["income"], dtype="<f8").tobytes()
    return oip.ModelInferRequest(
        model_name="churn",
        inputs=[
            Tensor(name="age", datatype="FP64", shape=[3]),
            Tensor(name="income", datatype="FP64", shape=[3]),
            Tensor(name="city", datatype="BYTES", shape=[3]),
        ],
        raw_input_contents=[
            np.asarray(columns["age"], dtype="<f8").tobytes(),
            income if raw_sizes_ok else income[:-8],
            _bytes(columns["city"]),
        ],
    )


def test_raw_bytes_tensor(inference, bundles):
    _, client = inference
    outputs = _outputs(client.oip.ModelInfer(_raw_city_request()))
    assert outputs["predictions"] == list(bundles["classifier"].predict(models.rows()).predictions)


BAD = {
    "raw-size-mismatch": (lambda: _raw_city_request(raw_sizes_ok=False), "raw_input_contents[1]"),
    "wrong-datatype": (
        lambda: _replace(
            2,
            Tensor(
                name="city",
                datatype="FP64",
                shape=[3],
                contents=oip.InferTensorContents(fp64_contents=[1, 2, 3]),
            ),
        ),
        "inputs.city",
    ),
    "unknown-datatype": (
        lambda: _replace(0, Tensor(name="age", datatype="FP128", shape=[3])),
        "inputs.age.datatype",
    ),
    "wrong-shape-count": (
        lambda: _replace(
            0,
            Tensor(
                name="age",
                datatype="FP64",
                shape=[4],
                contents=oip.InferTensorContents(fp64_contents=[1, 2, 3]),
            ),
        ),
        "inputs.age.shape",
    ),
    "wrong-shape-rank": (
        lambda: _replace(
            0,
            Tensor(
                name="age",
                datatype="FP64",
                shape=[1, 3],
                contents=oip.InferTensorContents(fp64_contents=[1, 2, 3]),
            ),
        ),
        "inputs.age.shape",
    ),
    "rows-disagree": (
        lambda: _replace(
            1,
            Tensor(
                name="income",
                datatype="FP64",
                shape=[2],
                contents=oip.InferTensorContents(fp64_contents=[1, 2]),
            ),
        ),
        "inputs.income.shape",
    ),
    "missing": (lambda: _drop(1), "inputs.income"),
    "misnamed": (
        lambda: _replace(
            1,
            Tensor(
                name="incom",
                datatype="FP64",
                shape=[3],
                contents=oip.InferTensorContents(fp64_contents=[1, 2, 3]),
            ),
        ),
        "inputs.incom",
    ),
    "nan-forbidden": (
        lambda: _replace(
            1,
            Tensor(
                name="income",
                datatype="FP64",
                shape=[3],
                contents=oip.InferTensorContents(fp64_contents=[1, np.nan, 3]),
            ),
        ),
        "inputs.income",
    ),
    "unknown-output": (
        lambda: _typed_request(
            models.rows(), outputs=[oip.ModelInferRequest.InferRequestedOutputTensor(name="logits")]
        ),
        "outputs[0].name",
    ),
}


def _replace(index, tensor):
    request = _typed_request(models.rows())
    request.inputs[index].CopyFrom(tensor)
    return request


def _drop(index):
    request = _typed_request(models.rows())
    del request.inputs[index]
    return request


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_tensors_name_the_field(inference, case):
    _, client = inference
    build, field = BAD[case]
    with pytest.raises(grpc.RpcError) as failure:
        client.oip.ModelInfer(build())
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in failure.value.details()
    assert client.oip.ModelInfer(_typed_request(models.rows())).model_version == "1"  # still serving


def test_repository_extension(inference, source, bundles):
    _, client = inference
    stub = client.oip
    stub.RepositoryModelLoad(oip.RepositoryModelLoadRequest(model_name="churn"))
    source.add_version("churn", bundles["flipped"])
    stub.RepositoryModelLoad(
        oip.RepositoryModelLoadRequest(
            model_name="churn", parameters={"version": oip.ModelRepositoryParameter(int64_param=2)}
        )
    )
    index = stub.RepositoryIndex(oip.RepositoryIndexRequest())
    assert sorted((m.name, m.version, m.state) for m in index.models) == [
        ("churn", "1", "READY"),
        ("churn", "2", "READY"),
    ]
    stub.RepositoryModelUnload(
        oip.RepositoryModelUnloadRequest(
            model_name="churn", parameters={"version": oip.ModelRepositoryParameter(string_param="2")}
        )
    )
    assert [m.version for m in stub.RepositoryIndex(oip.RepositoryIndexRequest()).models] == ["1"]
    stub.RepositoryModelUnload(oip.RepositoryModelUnloadRequest(model_name="churn"))
    assert not stub.RepositoryIndex(oip.RepositoryIndexRequest()).models
    with pytest.raises(grpc.RpcError) as failure:
        stub.RepositoryModelUnload(oip.RepositoryModelUnloadRequest(model_name="churn"))
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as failure:
        stub.RepositoryModelLoad(oip.RepositoryModelLoadRequest(model_name="ghost"))
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND


_TRITON = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tritonclient.grpc as tc

    client = tc.InferenceServerClient(sys.argv[1])
    out = {"live": client.is_server_live(), "ready": client.is_server_ready()}
    out["extensions"] = list(client.get_server_metadata().extensions)
    meta = client.get_model_metadata("churn")
    out["inputs"] = [(t.name, t.datatype) for t in meta.inputs]
    out["model_ready"] = client.is_model_ready("churn")
    age = tc.InferInput("age", [3], "FP64")
    age.set_data_from_numpy(np.array([30.0, np.nan, 55.0]))
    income = tc.InferInput("income", [3], "FP32")
    income.set_data_from_numpy(np.array([80, 10, 45.5], np.float32))
    city = tc.InferInput("city", [3], "BYTES")
    city.set_data_from_numpy(np.array([b"paris", b"nice", b"lyon"], object))
    wanted = [tc.InferRequestedOutput("predictions"), tc.InferRequestedOutput("probabilities")]
    result = client.infer("churn", [age, income, city], request_id="t-1", outputs=wanted)
    out["id"] = result.get_response().id
    out["version"] = result.get_response().model_version
    out["predictions"] = [p.decode() for p in result.as_numpy("predictions")]
    out["probabilities"] = result.as_numpy("probabilities").tolist()
    features = tc.InferInput("features", [2, 4], "FP32")
    features.set_data_from_numpy(np.array([[1, 1, 1, 1], [-1, -1, -1, -1]], np.float32))
    out["xgb"] = client.infer("xgb", [features], model_version="1").as_numpy("predictions").tolist()
    try:
        client.infer("churn", [age, income])
    except tc.InferenceServerException as exc:
        out["error"] = [exc.status(), exc.message()]
    client.unload_model("xgb")
    out["index"] = [m.name for m in client.get_model_repository_index().models]
    print(json.dumps(out))
    """
)


def test_tritonclient_unchanged(inference, source, bundles):
    server, _ = inference
    source.add_version("xgb", models.xgb_classifier())
    assert TRITON_PYTHON.exists(), f"{TRITON_PYTHON} missing: run `make install`"
    run = subprocess.run(
        [str(TRITON_PYTHON), "-c", _TRITON, server.address],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["live"] and out["ready"] and out["model_ready"] and "model_repository" in out["extensions"]
    assert out["inputs"] == [["age", "FP64"], ["income", "FP64"], ["city", "BYTES"]]
    assert (out["id"], out["version"]) == ("t-1", "1")
    columns = {"age": [30.0, np.nan, 55.0], "income": [80.0, 10.0, 45.5], "city": ["paris", "nice", "lyon"]}
    want = bundles["classifier"].predict(columns)
    assert out["predictions"] == list(want.predictions)
    np.testing.assert_allclose(out["probabilities"], want.probabilities, rtol=1e-6)
    assert out["xgb"] == [1, 0]
    assert out["error"][0] == "StatusCode.INVALID_ARGUMENT" and "inputs.city" in out["error"][1]
    assert out["index"] == ["churn"]
