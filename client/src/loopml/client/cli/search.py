"""`loopml search ...`: start, watch, list, show, leaderboard, cancel AutoML searches."""

from __future__ import annotations

import typer
from google.protobuf.json_format import MessageToDict
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from loopml.client.cli.output import console, emit, json_mode, table
from loopml.client.trainer import FINAL_STATES, TrainerClient, family_name, metric_name, state_name

app = typer.Typer(help="Run AutoML searches and inspect their trials.", no_args_is_help=True)


def _client() -> TrainerClient:
    return TrainerClient()


def _dict(message) -> dict:
    return MessageToDict(message, preserving_proto_field_name=True)


def _seconds(duration) -> float:
    return duration.seconds + duration.nanos / 1e9


def _params(params) -> str:
    def show(v):
        kind = v.WhichOneof("kind")
        value = getattr(v, kind) if kind and kind != "null_value" else None
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    return ", ".join(f"{k.split('__', 1)[-1]}={show(v)}" for k, v in sorted(params.items()))


def _summary(search) -> None:
    score = f"{search.best_trial.score:.5g}" if search.best_trial.HasField("score") else "-"
    console.print(
        f"search [bold]{search.search_id}[/] {state_name(search.state)}  "
        f"metric {metric_name(search.spec.metric)}  best {score}"
    )
    p = search.progress
    console.print(
        f"  trials: {p.completed_trials} complete, {p.pruned_trials} pruned, {p.failed_trials} failed, "
        f"{p.running_trials} running; elapsed {_seconds(p.elapsed):.1f}s"
    )
    if search.failure_reason:
        console.print(f"  reason: {search.failure_reason}")
    for failure in search.family_failures:
        console.print(f"  {family_name(failure.family)}: {failure.failed_trials} failed ({failure.reason})")
    if search.HasField("result"):
        r = search.result
        console.print(
            f"  result: {family_name(r.family)} {metric_name(r.score.metric)}={r.score.value:.5g}  "
            f"artifact {r.artifact_uri}"
        )
        if r.test_metrics:
            console.print(
                "  test: " + ", ".join(f"{metric_name(m.metric)}={m.value:.4g}" for m in r.test_metrics)
            )
        if r.registered_model.name:
            console.print(f"  registered: {r.registered_model.name} v{r.registered_model.version}")
        elif r.registration_error:
            pending = " (retrying)" if r.registration_pending else ""
            console.print(f"  not registered{pending}: {r.registration_error}")


def _board_table(board, limit: int = 0) -> Table:
    t = Table(
        title=f"leaderboard ({metric_name(board.metric)}, "
        f"{'higher' if board.higher_is_better else 'lower'} is better)"
    )
    for column in ("rank", "trial", "family", "score", "± std", "fit s", "latency ms/row", "state", "params"):
        t.add_column(column)
    entries = board.entries[:limit] if limit else board.entries
    for e in entries:
        trial = e.trial
        t.add_row(
            str(e.rank or "-"),
            trial.trial_id,
            family_name(trial.family),
            f"{trial.score:.5g}" if trial.HasField("score") else "-",
            f"{trial.score_std:.3g}" if trial.HasField("score_std") else "",
            f"{_seconds(trial.fit_duration):.2f}",
            f"{_seconds(trial.predict_latency) * 1000:.3f}",
            trial.failure_reason[:40]
            if trial.failure_reason
            else ("" if trial.state == 2 else str(trial.state)),
            ", ".join(f"{family_name(m.family)}×{m.weight:.2f}" for m in e.ensemble_members)
            or _params(trial.params)[:60],
        )
    return t


@app.command("start")
def start(
    ctx: typer.Context,
    dataset: str = typer.Argument(..., help="Dataset id."),
    label: str = typer.Option("", "--label", "-l", help="Label column (default: the dataset's label)."),
    budget: float = typer.Option(60.0, "--budget", "-b", help="Time budget in seconds."),
    version: int = typer.Option(0, help="Dataset version (0: latest)."),
    task: str = typer.Option("", help="auto, binary, multiclass or regression."),
    metric: str = typer.Option("", help="Metric to optimise (default: the task's)."),
    max_trials: int = typer.Option(0, help="Stop after this many trials (0: no limit)."),
    family: list[str] = typer.Option([], "--family", "-f", help="Allowed model family (repeatable)."),
    strategy: str = typer.Option("", help="tpe, random, cma_es, qmc or grid."),
    pruner: str = typer.Option("", help="none, median, successive_halving or hyperband."),
    folds: int = typer.Option(0, help="Cross-validation folds (0: automatic)."),
    parallel: int = typer.Option(0, help="Trials at once."),
    seed: int = typer.Option(None, help="Seed."),
    no_ensemble: bool = typer.Option(False, "--no-ensemble", help="Do not build an ensemble."),
    register: str = typer.Option("", "--register", "-r", help="Register the result under this model name."),
    split: str = typer.Option("", help="Stored split id."),
    split_validation: bool = typer.Option(
        False, "--split-validation", help="Score on the stored split's validation part (needs --split)."
    ),
    weight: str = typer.Option("", help="Sample-weight column (default: the column with role weight)."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Follow the search until it ends."),
):
    """Start a search."""
    with _client() as client:
        search = client.create_search(
            dataset,
            version=version,
            label=label,
            time_budget_s=budget if budget > 0 or not max_trials else None,
            task=task or None,
            metric=metric or None,
            max_trials=max_trials,
            families=family,
            strategy=strategy or None,
            pruner=pruner or None,
            cv_folds=folds or None,
            parallel_trials=parallel,
            seed=seed,
            ensemble=False if no_ensemble else None,
            register_model_name=register,
            split_id=split,
            use_split_validation=split_validation,
            weight_column=weight,
        )
        if watch:
            _watch(ctx, client, search.search_id)
            return
        emit(ctx, _dict(search), lambda: _summary(search))


def _watch(ctx: typer.Context, client: TrainerClient, search_id: str) -> None:
    if json_mode(ctx):
        for event in client.watch(search_id):
            emit(ctx, _dict(event))
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
    )
    task = bar.add_task(f"search {search_id}", total=1.0, info="")
    with Live(bar, console=console, refresh_per_second=4) as live:
        for event in client.watch(search_id):
            p = event.progress
            bar.update(
                task,
                completed=p.fraction_done,
                info=f"{p.completed_trials} done, {p.failed_trials} failed, "
                f"{_seconds(p.time_left):.0f}s left",
            )
            kind = event.WhichOneof("event")
            if kind == "trial_finished":
                trial = event.trial_finished.trial
                score = f"{trial.score:.5g}" if trial.HasField("score") else trial.failure_reason[:50]
                live.console.print(f"  trial {trial.number} {family_name(trial.family)}: {score}")
            elif kind == "best_trial_changed":
                live.console.print(f"  [green]new best[/] {event.best_trial_changed.trial.score:.5g}")
            elif kind == "state_changed":
                live.console.print(
                    f"  state {state_name(event.state_changed.state)} {event.state_changed.reason}"
                )
    search = client.get_search(search_id)
    _summary(search)
    if search.state in FINAL_STATES and search.progress.completed_trials:
        console.print(_board_table(client.leaderboard(search_id), limit=10))


@app.command("watch")
def watch_command(ctx: typer.Context, search_id: str):
    """Follow a search live: progress bar, trials, best so far."""
    with _client() as client:
        _watch(ctx, client, search_id)


@app.command("list")
def list_command(
    ctx: typer.Context,
    state: list[str] = typer.Option([], help="Only these states (repeatable)."),
    dataset: str = typer.Option("", help="Only searches on this dataset id."),
    model: str = typer.Option("", help="Only searches registering this model name."),
):
    """List searches, newest first."""
    with _client() as client:
        searches = list(client.list_searches(states=state, dataset_id=dataset, model_name=model))
    emit(
        ctx,
        [_dict(s) for s in searches],
        lambda: table(
            "searches",
            ("search", "state", "dataset", "metric", "best", "trials", "model"),
            [
                (
                    s.search_id,
                    state_name(s.state),
                    s.spec.dataset.dataset_id,
                    metric_name(s.spec.metric),
                    f"{s.best_trial.score:.5g}" if s.best_trial.HasField("score") else "-",
                    s.progress.completed_trials,
                    s.spec.register_model_name,
                )
                for s in searches
            ],
        ),
    )


@app.command("show")
def show(ctx: typer.Context, search_id: str):
    """One search: state, progress, best trial, result."""
    with _client() as client:
        search = client.get_search(search_id)
    emit(ctx, _dict(search), lambda: _summary(search))


@app.command("leaderboard")
def leaderboard(
    ctx: typer.Context,
    search_id: str,
    all_trials: bool = typer.Option(False, "--all", help="Include pruned and failed trials."),
):
    """Every trial ranked by score; the ensemble is its own entry."""
    with _client() as client:
        board = client.leaderboard(search_id, include_unscored=all_trials)
    emit(ctx, _dict(board), lambda: console.print(_board_table(board)))


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    search_id: str,
    keep_best: bool = typer.Option(False, "--keep-best", help="Package the best model so far."),
):
    """Cancel a search (it stops within 5 seconds)."""
    with _client() as client:
        search = client.cancel_search(search_id, keep_best=keep_best)
    emit(ctx, _dict(search), lambda: _summary(search))
