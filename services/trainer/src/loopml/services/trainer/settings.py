"""Settings of the trainer service (environment variables LOOPML_*)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from loopml.runtime.settings import ServiceSettings


class TrainerSettings(ServiceSettings):
    service_name: ClassVar[str] = "trainer"

    listen_address: str = "127.0.0.1:50052"
    #: Run search slots in this process (False: API only; `loopml-trainer-worker` processes run them).
    run_searches: bool = True
    #: Search slots (trials at once) this process runs.
    worker_slots: int = Field(default=1, ge=1, le=64)
    #: Trials run at once by a search that does not say (its slots, shared by all workers).
    default_parallel_trials: int = Field(default=1, ge=1, le=64)
    #: Seconds a claimed slot stays ours without renewal; a dead worker's slot is reclaimed after it.
    lease_s: float = Field(default=15.0, gt=0)
    #: Optuna heartbeat of running trials, and how long without one before a trial is reaped as failed.
    heartbeat_interval_s: int = Field(default=2, ge=1)
    heartbeat_grace_s: int = Field(default=10, ge=2)
    #: Wall-clock seconds a trial may run when the search sets no per-trial limit; then it is killed.
    default_trial_time_limit_s: float = Field(default=600.0, gt=0)
    #: Resident memory a trial's worker process may use when the search sets none (0: no limit).
    default_trial_memory_limit_bytes: int = Field(default=4 * 2**30, ge=0)
    #: Worker id (empty: host name and process id).
    worker_id: str = ""
