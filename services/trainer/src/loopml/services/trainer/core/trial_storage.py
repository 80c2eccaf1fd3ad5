"""Optuna's cached RDB storage, with the start and the end of a trial each written in one transaction.

Optuna commits every `suggest_*` call on its own, one transaction per parameter. The trainer samples
a whole configuration before it dispatches the trial, so between `hold_params` and `commit_start`
the parameters of that trial stay in this process, and `commit_start` writes them together with the
trial's start attributes and its first heartbeat in a single transaction. The commit happens before
the trial runs, so other workers and a resumed trainer see the same rows as with plain Optuna.
At the end, `hold_user_attrs` lets the trial's outcome attributes ride on the commit that
`study.tell` makes to finish the trial.

Built on Optuna's own cache wrapper and RDB internals (`optuna==5.0.0` is pinned).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from optuna.distributions import BaseDistribution, check_distribution_compatibility
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import RDBStorage, _create_scoped_session
from optuna.trial import TrialState
from sqlalchemy import exc as sqlalchemy_exc


class TrialStartBatchingStorage(_CachedStorage):
    def __init__(self, backend: RDBStorage):
        super().__init__(backend)
        self._held: dict[int, list[tuple[str, float, BaseDistribution]]] = {}
        self._held_attrs: dict[int, dict[str, Any]] = {}

    def hold_params(self, trial_id: int) -> None:
        """Keep the parameters suggested for `trial_id` in memory until `commit_start`."""
        with self._lock:
            self._held[trial_id] = []

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: BaseDistribution
    ) -> None:
        with self._lock:
            held = self._held.get(trial_id)
            if held is not None:
                study_id, _ = self._trial_id_to_study_id_and_number[trial_id]
                known = self._studies[study_id].param_distribution.get(param_name)
                if known is not None:
                    check_distribution_compatibility(known, distribution)
                held.append((param_name, param_value_internal, distribution))
                return
        super().set_trial_param(trial_id, param_name, param_value_internal, distribution)

    def commit_start(self, trial_id: int, user_attrs: dict[str, Any]) -> None:
        """Write the held parameters, `user_attrs` and the first heartbeat in one transaction."""
        with self._lock:
            held = self._held.pop(trial_id, [])
            study_id, _ = self._trial_id_to_study_id_and_number[trial_id]
            known = dict(self._studies[study_id].param_distribution)
        backend = self._backend
        with _create_scoped_session(backend.scoped_session) as session:
            for name, value, distribution in held:
                backend._set_trial_param_without_commit(
                    session, trial_id, name, value, distribution, known.get(name)
                )
            for key, value in user_attrs.items():
                backend._set_trial_attr_without_commit(
                    session, models.TrialUserAttributeModel, trial_id, key, value
                )
            if backend.heartbeat_interval is not None:
                session.add(models.TrialHeartbeatModel(trial_id=trial_id))
        with self._lock:
            distributions = self._studies[study_id].param_distribution
            for name, _, distribution in held:
                distributions.setdefault(name, distribution)

    def hold_user_attrs(self, trial_id: int, user_attrs: dict[str, Any]) -> None:
        """Write `user_attrs` with the trial's final state (`study.tell`), in the same transaction."""
        with self._lock:
            self._held_attrs[trial_id] = user_attrs

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        with self._lock:
            user_attrs = self._held_attrs.pop(trial_id, None) if state.is_finished() else None
        if not user_attrs:
            return super().set_trial_state_values(trial_id, state, values)
        backend = self._backend
        try:  # as RDBStorage.set_trial_state_values, plus the held attributes
            with _create_scoped_session(backend.scoped_session) as session:
                for key, value in user_attrs.items():
                    backend._set_trial_attr_without_commit(
                        session, models.TrialUserAttributeModel, trial_id, key, value
                    )
                trial = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
                backend.check_trial_is_updatable(trial_id, trial.state)
                for objective, value in enumerate(values or ()):
                    backend._set_trial_value_without_commit(session, trial, objective, value)
                trial.state = state
                trial.datetime_complete = datetime.now()
        except sqlalchemy_exc.IntegrityError:
            return False
        return True
