"""Inference service: online prediction (Open Inference Protocol v2 and loopml's PredictionService)."""
