"""gRPC adapters of the inference service: loopml's PredictionService and the Open Inference Protocol v2.

Translate, call the `ModelManager`, translate back. Domain errors are mapped by the server's
interceptor, except inside PredictStream where each failed request becomes a `PredictError`.

Predict, PredictStream and ModelInfer honour the call metadata `loopml-log-prediction: false`: the
request is answered as usual but kept out of the prediction log (scoring that is not live traffic,
such as a retrainer's holdout rows).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc

from loopml.inference.v1 import prediction_service_pb2 as pb
from loopml.inference.v1 import prediction_service_pb2_grpc
from loopml.oip.v2 import open_inference_pb2 as oip
from loopml.oip.v2 import open_inference_pb2_grpc
from loopml.runtime.errors import InvalidArgument, LoopmlError, NotFound
from loopml.runtime.grpcserver.logs import request_id_var
from loopml.services.inference import convert, oip_convert
from loopml.services.inference.core import ModelManager, ModelRef

SERVER_NAME = "loopml-inference"
SERVER_VERSION = "0.1.0"
EXTENSIONS = ["model_repository"]
#: Call metadata that keeps a prediction out of the prediction log when its value is `false`.
LOG_PREDICTION_METADATA = "loopml-log-prediction"
_MAX_PAGE = 1000


def log_prediction(context) -> bool:
    """Whether the call's predictions go to the prediction log: yes unless its metadata says
    `loopml-log-prediction: false` (`true` is accepted too; any other value is refused)."""
    for key, value in context.invocation_metadata():
        if key == LOG_PREDICTION_METADATA:
            flag = value.strip().lower()
            if flag not in ("true", "false"):
                raise InvalidArgument(
                    f"metadata.{LOG_PREDICTION_METADATA}", f"must be 'true' or 'false', got {value!r}"
                )
            return flag == "true"
    return True


class PredictionServiceServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager: ModelManager):
        self._manager = manager

    def _predict(self, request: pb.PredictRequest, log: bool) -> pb.PredictResponse:
        result = self._manager.predict(
            convert.model_ref(request.model, "model"),
            convert.input_batch(request.inputs),
            request_id=request.request_id,
            omit_probabilities=request.omit_probabilities,
            labels=dict(request.labels),
            log=log,
        )
        return convert.predict_response(result)

    def Predict(self, request, context):
        return self._predict(request, log_prediction(context))

    def PredictStream(self, request_iterator, context) -> Iterator[pb.PredictStreamResponse]:
        log = log_prediction(context)
        for message in request_iterator:
            try:
                yield pb.PredictStreamResponse(response=self._predict(message.request, log))
            except LoopmlError as error:
                field = error.field if isinstance(error, InvalidArgument) else ""
                yield pb.PredictStreamResponse(
                    error=pb.PredictError(
                        request_id=message.request.request_id,
                        code=grpc.StatusCode[error.code].value[0],
                        message=error.message,
                        field=field,
                    )
                )

    def LoadModel(self, request, context):
        canary = convert.model_ref(request.canary, "canary") if request.HasField("canary") else None
        batching = (
            convert.batching(request.batching, self._manager.default_batching)
            if request.HasField("batching")
            else None
        )
        deployment = self._manager.load(
            convert.model_ref(request.model, "model"),
            canary=canary,
            canary_weight=request.canary_weight,
            batching=batching,
        )
        return pb.LoadModelResponse(model=convert.loaded_model(deployment))

    def UnloadModel(self, request, context):
        self._manager.unload(convert.model_ref(request.model, "model"))
        return pb.UnloadModelResponse()

    def ListLoadedModels(self, request, context):
        if request.page_size < 0:
            raise InvalidArgument("page_size", "must not be negative")
        if request.page_token and not request.page_token.isdigit():
            raise InvalidArgument("page_token", "not a token this server issued")
        size = min(request.page_size or 50, _MAX_PAGE)
        start = int(request.page_token or 0)
        deployments = self._manager.loaded(request.model_name)
        page = deployments[start : start + size]
        more = start + size < len(deployments)
        return pb.ListLoadedModelsResponse(
            models=[convert.loaded_model(d) for d in page],
            next_page_token=str(start + size) if more else "",
            memory_used_bytes=self._manager.memory_used_bytes(),
            memory_limit_bytes=self._manager.memory_limit_bytes,
        )


class InferenceServicer(open_inference_pb2_grpc.GRPCInferenceServiceServicer):
    """`inference.GRPCInferenceService`, the Open Inference Protocol v2."""

    def __init__(self, manager: ModelManager, ready: Callable[[], bool]):
        self._manager = manager
        self._ready = ready

    def ServerLive(self, request, context):
        return oip.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):
        return oip.ServerReadyResponse(ready=self._ready())

    def ModelReady(self, request, context):
        ref = oip_convert.model_ref(request.name, request.version, "name")
        try:
            self._manager.get(ref, load=False)
        except NotFound:
            return oip.ModelReadyResponse(ready=False)
        return oip.ModelReadyResponse(ready=True)

    def ServerMetadata(self, request, context):
        return oip.ServerMetadataResponse(name=SERVER_NAME, version=SERVER_VERSION, extensions=EXTENSIONS)

    def ModelMetadata(self, request, context):
        deployment = self._manager.get(oip_convert.model_ref(request.name, request.version, "name"))
        return oip_convert.model_metadata(deployment)

    def ModelInfer(self, request, context):
        ref = oip_convert.model_ref(request.model_name, request.model_version)
        batch = oip_convert.input_batch(request)
        deployment = self._manager.get(ref)
        outputs = oip_convert.requested_outputs(request, deployment.bundle)
        result = self._manager.predict(
            ref,
            batch,
            # Without an id of its own, the request is known by the call's id (x-request-id).
            request_id=request.id or request_id_var.get(),
            omit_probabilities=oip_convert.PROBABILITIES not in outputs,
            log=log_prediction(context),
            deployment=deployment,
        )
        return oip_convert.infer_response(request, result, outputs)

    def RepositoryIndex(self, request, context):
        response = oip.RepositoryIndexResponse()
        for deployment in self._manager.loaded():
            failed = deployment.failed
            response.models.add(
                name=deployment.ref.name,
                version=str(deployment.primary.version),
                state="READY",
                reason=f"reload to version {failed[0]} failed: {failed[1]}" if failed else "",
            )
        return response

    def RepositoryModelLoad(self, request, context):
        self._manager.load(_repository_ref(request))
        return oip.RepositoryModelLoadResponse()

    def RepositoryModelUnload(self, request, context):
        if "version" in request.parameters or "alias" in request.parameters:
            self._manager.unload(_repository_ref(request))
            return oip.RepositoryModelUnloadResponse()
        deployments = self._manager.loaded(request.model_name)
        if not deployments:
            raise NotFound("loaded model", request.model_name)
        for deployment in deployments:
            self._manager.unload(deployment.ref)
        return oip.RepositoryModelUnloadResponse()


def _repository_ref(request) -> ModelRef:
    """Repository load/unload parameters: `version` (int or digits), `alias`, or neither (production)."""
    params = request.parameters
    version = ""
    if "version" in params:
        param = params["version"]
        version = (
            str(param.int64_param)
            if param.WhichOneof("parameter_choice") == "int64_param"
            else param.string_param
        )
        if not version.isdigit() and version != "latest":
            raise InvalidArgument(
                "parameters.version", f"must be a version number or 'latest', got {version!r}"
            )
    elif "alias" in params:
        version = params["alias"].string_param
        if not version:
            raise InvalidArgument("parameters.alias", "must be a non-empty string")
    return oip_convert.model_ref(request.model_name, version)
