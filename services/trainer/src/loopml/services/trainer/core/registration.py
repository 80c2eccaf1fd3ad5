"""Registering a search's model in the registry: a few quick tries, then in the background.

A registry that is down (UNAVAILABLE or DEADLINE_EXCEEDED) must not cost the search its model. The
search ends with its artifact in the object store, `registration_error` saying why, and
`registration_pending`; every trainer process that runs searches retries such searches with
exponential backoff, from its start-up on, until the registry answers. CreateModelVersion carries a
request id derived from the search and the artifact, so two processes retrying at once register one
version. Any other error (the registry refused the model) is final and only reported.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from loopml.modelkit import ModelBundle, load_bundle
from loopml.runtime.errors import DeadlineExceeded, Unavailable

log = logging.getLogger(__name__)

#: Pauses between the tries made while the search finalises (kept short: the budget's 5% margin).
QUICK_RETRY_DELAYS_S = (0.3, 0.7)
#: First and longest pause between background tries.
BACKOFF_FIRST_S, BACKOFF_MAX_S = 2.0, 60.0

TRANSIENT = (Unavailable, DeadlineExceeded)


def lineage(spec: dict[str, Any], search_id: str, summary: dict[str, Any]) -> dict[str, Any]:
    members = [m["trial_id"] for m in summary.get("ensemble_members", [])]
    return {
        "dataset_id": spec["dataset_id"],
        "dataset_version": spec["dataset_version"],
        "split_id": spec["split_id"],
        "search_id": search_id,
        "trial_id": "" if members else summary["best_trial_id"],
        "ensemble_trial_ids": members,
    }


def register(
    registry,
    spec: dict[str, Any],
    search_id: str,
    summary: dict[str, Any],
    bundle: ModelBundle,
    data: bytes,
    delays_s: tuple[float, ...] = (),
) -> dict[str, Any]:
    """Try to register; returns the summary fields to update (registered_model or the error)."""
    if registry is None:
        return {"registration_error": "no registry configured", "registration_pending": False}
    description = spec.get("description") or f"search {search_id}"
    for pause in (*delays_s, None):
        try:
            name, version = registry.register(
                spec["register_model_name"],
                data,
                summary["artifact_sha256"],
                bundle,
                lineage(spec, search_id, summary),
                description,
            )
        except TRANSIENT as exc:
            if pause is None:
                log.warning("search %s: registry unavailable, will retry: %s", search_id, exc)
                return {
                    "registration_error": f"registry unavailable, retrying in the background: {exc.message}",
                    "registration_pending": True,
                }
            time.sleep(pause)
        except Exception as exc:  # noqa: BLE001 - final: the artifact stays, recorded on the search
            log.warning("search %s: registration failed: %s", search_id, exc)
            return {"registration_error": f"{type(exc).__name__}: {exc}", "registration_pending": False}
        else:
            return {
                "registered_model": {"name": name, "version": version},
                "registration_error": "",
                "registration_pending": False,
            }
    raise AssertionError("unreachable")


class RegistrationRetrier:
    """Retries the pending registrations of finished searches, each with its own backoff."""

    def __init__(self, engine):
        self.engine = engine
        self._schedule: dict[str, tuple[float, float]] = {}  # search id -> (next try at, pause after)

    def run_due(self) -> None:
        now = time.monotonic()
        for row in self.engine.state.pending_registrations():
            due, pause = self._schedule.get(row.search_id, (0.0, BACKOFF_FIRST_S))
            if now < due:
                continue
            if self._retry(row):
                self._schedule.pop(row.search_id, None)
            else:
                self._schedule[row.search_id] = (now + pause, min(pause * 2, BACKOFF_MAX_S))

    def _retry(self, row) -> bool:
        """One try; True when the search needs no more (registered, or failed for good)."""
        summary = json.loads(row.result)
        key = f"trainer/searches/{row.search_id}/model.bundle"
        data = self.engine.store.read_bytes(key)
        bundle = load_bundle(data, summary["artifact_sha256"])
        update = register(self.engine.registry, json.loads(row.spec), row.search_id, summary, bundle, data)
        if update["registration_pending"]:
            return False
        summary.update(update)
        self.engine.state.finish_registration(row.search_id, json.dumps(summary))
        log.info("search %s: registration retried: %s", row.search_id, update)
        return True
