"""Trainer service: the AutoML search."""
