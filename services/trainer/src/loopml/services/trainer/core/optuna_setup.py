"""Optuna samplers and pruners by the names a search spec uses."""

from __future__ import annotations

from loopml.services.trainer.core.space import FAMILY_PARAM, SearchSpace


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


def make_pruner(pruner: str):
    """The pruner, comparing each trial only with trials of its own family.

    A step means boosting rounds or epochs for the families trained in stages and folds for the
    others (see `evaluate`); a partly trained booster must not be judged against finished folds.
    """
    import optuna

    if pruner == "none":
        return optuna.pruners.NopPruner()
    if pruner == "successive_halving":
        inner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
    elif pruner == "hyperband":
        inner = _hyperband_per_family()(min_resource=1, max_resource="auto")
    else:
        inner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    return _per_family(inner)


def _per_family(inner):
    import optuna

    class PerFamilyPruner(optuna.pruners.BasePruner):
        def __init__(self, inner):
            self.inner = inner

        def prune(self, study, trial) -> bool:
            return self.inner.prune(FamilyView(study, trial.params.get(FAMILY_PARAM)), trial)

    return PerFamilyPruner(inner)


class FamilyView:
    """A study as a pruner sees it, restricted to the trials of one family."""

    def __init__(self, study, family: str | None):
        self._study, self.family = study, family

    def __getattr__(self, name):
        return getattr(self._study, name)

    def get_trials(self, deepcopy: bool = True, states=None):
        trials = self._study.get_trials(deepcopy=deepcopy, states=states)
        return [t for t in trials if t.params.get(FAMILY_PARAM) == self.family]

    @property
    def trials(self):
        return self.get_trials()


def _hyperband_per_family():
    import optuna

    class PerFamilyHyperband(optuna.pruners.HyperbandPruner):
        """Hyperband's brackets are studies of their own; each keeps to the trial's family too."""

        def _create_bracket_study(self, study, bracket_index):
            bracket = super()._create_bracket_study(study, bracket_index)
            return FamilyView(bracket, study.family) if isinstance(study, FamilyView) else bracket

    return PerFamilyHyperband
