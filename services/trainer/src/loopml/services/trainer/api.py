"""gRPC adapter of the trainer service: translate, call the core, translate back."""

from __future__ import annotations

from loopml.services.trainer import convert
from loopml.services.trainer.core.service import Trainer
from loopml.trainer.v1 import trainer_service_pb2 as pb
from loopml.trainer.v1 import trainer_service_pb2_grpc


class TrainerServiceServicer(trainer_service_pb2_grpc.TrainerServiceServicer):
    def __init__(self, trainer: Trainer):
        self.trainer = trainer

    def CreateSearch(self, request: pb.CreateSearchRequest, context) -> pb.CreateSearchResponse:
        spec = convert.spec_from_proto(request.spec)
        view = self.trainer.create_search(
            spec, request_id=request.request_id, validate_only=request.validate_only
        )
        return pb.CreateSearchResponse(search=convert.search_to_proto(view))

    def GetSearch(self, request: pb.GetSearchRequest, context) -> pb.GetSearchResponse:
        return pb.GetSearchResponse(
            search=convert.search_to_proto(self.trainer.get_search(request.search_id))
        )

    def ListSearches(self, request: pb.ListSearchesRequest, context) -> pb.ListSearchesResponse:
        views, token = self.trainer.list_searches(
            page_size=request.page_size,
            page_token=request.page_token,
            states=[
                convert.SEARCH_STATE_FROM_PROTO[s]
                for s in request.states
                if s in convert.SEARCH_STATE_FROM_PROTO
            ],
            dataset_id=request.dataset_id,
            model_name=request.register_model_name,
            tags=dict(request.tags),
        )
        return pb.ListSearchesResponse(
            searches=[convert.search_to_proto(v) for v in views], next_page_token=token
        )

    def CancelSearch(self, request: pb.CancelSearchRequest, context) -> pb.CancelSearchResponse:
        view = self.trainer.cancel_search(request.search_id, keep_best=request.keep_best)
        return pb.CancelSearchResponse(search=convert.search_to_proto(view))

    def WatchSearch(self, request: pb.WatchSearchRequest, context):
        after = request.after_sequence if request.HasField("after_sequence") else None
        metric = self.trainer.get_search(request.search_id).spec["metric"]
        for event, progress in self.trainer.watch(
            request.search_id, after_sequence=after, is_active=context.is_active
        ):
            yield convert.event_to_proto(event, progress, metric)

    def GetLeaderboard(self, request: pb.GetLeaderboardRequest, context) -> pb.GetLeaderboardResponse:
        board = self.trainer.leaderboard(
            request.search_id,
            page_size=request.page_size,
            page_token=request.page_token,
            include_unscored=request.include_unscored,
        )
        return pb.GetLeaderboardResponse(
            metric=convert.metric_to_proto(board.metric),
            higher_is_better=board.higher_is_better,
            entries=[convert.leaderboard_entry(r, t, m, board.metric) for r, t, m in board.entries],
            next_page_token=board.next_page_token,
        )
