"""The trainer over gRPC, with the real dataset and registry services, on both storage backends."""

from __future__ import annotations

import io

import pytest

from loopml.client.datasets import DatasetClient
from loopml.client.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from loopml.client.registry import RegistryClient
from loopml.client.trainer import TrainerClient, build_spec, family_name, metric_name, state_name
from loopml.modelkit import load_bundle
from loopml.services.dataset.server import make_server as make_dataset_server
from loopml.services.dataset.settings import DatasetSettings
from loopml.services.registry.server import make_server as make_registry_server
from loopml.services.registry.settings import RegistrySettings
from loopml.services.trainer.server import make_server as make_trainer_server
from loopml.services.trainer.settings import TrainerSettings
from tests.trainer.helpers import breast_cancer

ANY_PORT = "127.0.0.1:0"


@pytest.fixture
def stack(backend, serve, tmp_path):
    """Dataset, registry and trainer servers on one backend; returns (clients, store settings)."""
    dataset = serve(
        "dataset", make_dataset_server, DatasetSettings(**backend.settings, listen_address=ANY_PORT)
    )
    registry = serve(
        "registry", make_registry_server, RegistrySettings(**backend.settings, listen_address=ANY_PORT)
    )
    serve(
        "trainer",
        make_trainer_server,
        TrainerSettings(
            **backend.settings,
            listen_address=ANY_PORT,
            dataset_address=dataset.address,
            registry_address=registry.address,
            lease_s=5,
        ),
    )
    config = serve.served.client_config()
    return DatasetClient(config), TrainerClient(config), RegistryClient(config), backend


def upload(datasets: DatasetClient, frame, name: str, label: str) -> str:
    buffer = io.BytesIO(frame.to_csv(index=False).encode())
    response = datasets.upload(buffer, name=name, label_column=label, filename=f"{name}.csv")
    return response.version.ref.dataset_id


def test_search_end_to_end(stack):
    datasets, trainer, registry, backend = stack
    dataset_id = upload(datasets, breast_cancer(160), "cancer", "target")

    # a generous budget and a trial cap: the search ends on the cap however loaded the machine is
    search = trainer.create_search(
        dataset_id,
        label="target",
        time_budget_s=300,
        max_trials=3,
        seed=3,
        families=["linear", "hist_gradient_boosting", "random_forest"],
        register_model_name="cancer-model",
        tags={"team": "a"},
    )
    assert state_name(search.state) == "PENDING"
    assert metric_name(search.spec.metric) == "roc_auc"  # resolved: binary -> ROC AUC
    # the automatic 75/25 split is stored on the dataset version
    stored = datasets.get(dataset_id, 1).version.splits
    assert [s.split_id for s in stored] == [search.spec.split_id] and stored[0].test_rows == 40

    events = list(trainer.watch(search.search_id))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-1] == "state_changed" and state_name(events[-1].state_changed.state) == "SUCCEEDED"
    assert "trial_started" in kinds and "trial_finished" in kinds and "best_trial_changed" in kinds
    assert [e.sequence for e in events] == sorted({e.sequence for e in events})
    started = next(e.trial_started.trial for e in events if e.WhichOneof("event") == "trial_started")
    assert started.params and family_name(started.family) in (
        "linear",
        "hist_gradient_boosting",
        "random_forest",
    )

    done = trainer.get_search(search.search_id)
    assert state_name(done.state) == "SUCCEEDED"
    assert done.progress.completed_trials == 3 and done.progress.fraction_done == 1.0
    result = done.result
    assert result.artifact_sha256 and result.test_metrics and result.feature_importances
    assert result.registered_model.name == "cancer-model" and result.registered_model.version == 1

    version = registry.get_version("cancer-model", 1) if hasattr(registry, "get_version") else None
    artifact = b"".join(chunk for chunk in _artifact(registry, "cancer-model", 1))
    bundle = load_bundle(artifact, result.artifact_sha256)
    assert bundle.class_labels == ["benign", "malignant"]
    frame = breast_cancer(160).drop(columns=["target"]).head(5)
    predicted = bundle.predict(frame)
    assert set(predicted.predictions) <= {"benign", "malignant"} and predicted.probabilities.shape == (5, 2)
    del version

    board = trainer.leaderboard(search.search_id, include_unscored=True)
    ranked = [e for e in board.entries if e.rank > 0]
    assert board.higher_is_better and ranked[0].rank == 1
    scores = [e.trial.score for e in ranked]
    assert scores == sorted(scores, reverse=True)
    assert all(e.trial.HasField("fit_duration") for e in ranked)

    # resuming a finished search's stream after its last event ends at once; beyond it is OUT_OF_RANGE
    assert list(trainer.watch(search.search_id, after_sequence=events[-1].sequence)) == []
    with pytest.raises(InvalidArgumentError) as beyond:  # the SDK maps OUT_OF_RANGE to InvalidArgumentError
        list(trainer.watch(search.search_id, after_sequence=events[-1].sequence + 1))
    assert beyond.value.code == "OUT_OF_RANGE"

    listed = list(trainer.list_searches(tags={"team": "a"}))
    assert [s.search_id for s in listed] == [search.search_id]
    assert list(trainer.list_searches(tags={"team": "b"})) == []
    with pytest.raises(FailedPreconditionError):
        trainer.cancel_search(search.search_id)


def _artifact(registry: RegistryClient, name: str, version: int):
    from loopml.common.v1 import refs_pb2
    from loopml.registry.v1 import registry_service_pb2 as rpb

    request = rpb.DownloadModelArtifactRequest(model=refs_pb2.ModelRef(name=name, version=version))
    for message in registry.stream("DownloadModelArtifact", request):
        if message.WhichOneof("payload") == "chunk":
            yield message.chunk


def test_bad_requests_are_refused_before_any_work(local_backend, serve):
    datasets_server = serve(
        "dataset", make_dataset_server, DatasetSettings(**local_backend.settings, listen_address=ANY_PORT)
    )
    serve(
        "trainer",
        make_trainer_server,
        TrainerSettings(
            **local_backend.settings,
            listen_address=ANY_PORT,
            dataset_address=datasets_server.address,
            run_searches=False,
        ),
    )
    config = serve.served.client_config()
    datasets, trainer = DatasetClient(config), TrainerClient(config)
    frame = breast_cancer(40)
    frame["constant"] = 1
    dataset_id = upload(datasets, frame, "small", "target")

    def refused(error, field_or_resource, **kwargs):
        with pytest.raises(error) as caught:
            trainer.create_search(kwargs.pop("dataset_id", dataset_id), **kwargs)
        text = str(caught.value) + " ".join(v.field for v in caught.value.field_violations)
        assert field_or_resource in text, text

    refused(NotFoundError, "nope", dataset_id="nope", label="target", time_budget_s=5)
    refused(NotFoundError, dataset_id, version=9, label="target", time_budget_s=5)
    refused(InvalidArgumentError, "spec.label_column", label="missing", time_budget_s=5)
    refused(InvalidArgumentError, "spec.label_column", label="constant", time_budget_s=5)
    refused(InvalidArgumentError, "spec.validation.cv_folds", label="target", time_budget_s=5, cv_folds=50)
    refused(InvalidArgumentError, "spec.metric", label="target", time_budget_s=5, metric="rmse")
    refused(InvalidArgumentError, "spec.time_budget", label="target", time_budget_s=0)
    refused(InvalidArgumentError, "spec.time_budget", label="target", time_budget_s=-3)
    refused(
        InvalidArgumentError,
        "spec.model_families[0]",
        label="target",
        time_budget_s=5,
        spec=_spec_with_family(dataset_id, 99),
    )
    refused(
        InvalidArgumentError,
        "spec.model_families[0]",
        label="target",
        time_budget_s=5,
        spec=_spec_with_family(dataset_id, 8),
    )  # ENSEMBLE is not allowed in a request
    weighted = build_spec(dataset_id, label="target", time_budget_s=5)
    weighted.weight_column = "missing"
    refused(InvalidArgumentError, "spec.weight_column", spec=weighted)
    assert list(trainer.list_searches()) == []  # nothing was created
    with pytest.raises(NotFoundError):
        trainer.get_search("unknown")

    checked = trainer.create_search(dataset_id, label="target", time_budget_s=5, validate_only=True)
    assert metric_name(checked.spec.metric) == "roc_auc" and checked.spec.validation.cv_folds == 5
    assert list(trainer.list_searches()) == []


def _spec_with_family(dataset_id: str, family: int):
    spec = build_spec(dataset_id, label="target", time_budget_s=5)
    spec.model_families.append(family)
    return spec
