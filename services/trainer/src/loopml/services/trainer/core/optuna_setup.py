"""Optuna samplers and pruners by the names a search spec uses."""

from __future__ import annotations

from loopml.services.trainer.core.space import SearchSpace


def make_sampler(strategy: str, space: SearchSpace, seed: int):
    import optuna

    if strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if strategy == "cma_es":  # categorical choices (family, encoders) fall back to random sampling
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if strategy == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if strategy == "grid":
        return optuna.samplers.GridSampler(space.grid_space(), seed=seed)
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=5)


def make_pruner(pruner: str, steps: int):
    """Pruners see one intermediate score per cross-validation fold (steps = folds)."""
    import optuna

    if pruner == "none" or steps < 2:
        return optuna.pruners.NopPruner()
    if pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=steps)
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
