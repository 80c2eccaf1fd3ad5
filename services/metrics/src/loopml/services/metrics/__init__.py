"""Metrics service: serving and model metrics, feedback, drift, alerts, retraining triggers."""
