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

__all__ = ["ARTIFACT_FORMAT", "ColumnSpec", "ModelBundle", "Prediction", "dump_bundle", "load_bundle"]
