"""The model artifact contract between the trainer (writes), the registry (stores) and inference (loads).

Everything a pickled artifact refers to lives in this package (not in the trainer), so the inference
image can load every artifact without carrying the training stack (Optuna, torch).
"""

from loopml.modelkit.artifact import (
    ARTIFACT_FORMAT,
    ColumnSpec,
    ModelBundle,
    Prediction,
    dump_bundle,
    load_bundle,
)

# Estimator classes load scikit-learn: imported on first use, so that `import loopml.modelkit`
# (the registry only needs the format) stays light.
_LAZY = {
    "DecodedClassifier": "ensemble",
    "WeightedEnsemble": "ensemble",
    "TabularMLPClassifier": "mlp",
    "TabularMLPRegressor": "mlp",
    "CategoryAsString": "transformers",
    "DatetimeExpander": "transformers",
    "TextColumn": "transformers",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"loopml.modelkit.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'loopml.modelkit' has no attribute {name!r}")

__all__ = [
    "ARTIFACT_FORMAT",
    "CategoryAsString",
    "ColumnSpec",
    "DatetimeExpander",
    "DecodedClassifier",
    "ModelBundle",
    "Prediction",
    "TabularMLPClassifier",
    "TabularMLPRegressor",
    "TextColumn",
    "WeightedEnsemble",
    "dump_bundle",
    "load_bundle",
]
