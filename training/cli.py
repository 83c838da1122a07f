"""The ``tutor`` command line: research replay and a self-contained demo.

Every command prints results on stdout (one JSON object with ``--json``) and progress and
errors on stderr, so it composes in shell pipelines; bad input exits with status 2 and a message
that says what to fix.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.cli import err, fail
from api.cli import register as register_service_commands
from engine.tracing import load_tracer, make_tracer
from engine.tracing.dkt_config import DKTConfig
from training.readers import FORMATS, read_log
from training.replay import calibration_plot, cross_validate, fit_and_score, score

app = typer.Typer(
    name="tutor",
    help="Adaptive tutoring engine: knowledge tracing, replay and evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True)

LogFormat = StrEnum("LogFormat", {f: f for f in FORMATS})  # type: ignore[misc]


class ModelName(StrEnum):
    bkt = "bkt"
    bkt_forgets = "bkt-forgets"
    dkt = "dkt"


class BKTModelName(StrEnum):
    bkt = "bkt"
    bkt_forgets = "bkt-forgets"


# DKT's settings, shared by `train dkt` and `replay --model dkt` (None: the model's default)
def _dkt_option(name: str, text: str, flag: str | None = None) -> Any:
    default = getattr(DKTConfig(), name)
    return typer.Option(*([flag] if flag else []), help=f"DKT: {text} (default {default}).")


Epochs = Annotated[int | None, _dkt_option("epochs", "most training epochs")]
Hidden = Annotated[int | None, _dkt_option("hidden", "LSTM units per layer")]
Embed = Annotated[int | None, _dkt_option("embed", "input embedding size")]
Layers = Annotated[int | None, _dkt_option("layers", "LSTM layers")]
Members = Annotated[int | None, _dkt_option(
    "members", "networks trained side by side whose predictions are averaged")]
Dropout = Annotated[float | None, _dkt_option("dropout", "dropout")]
LearningRate = Annotated[float | None, _dkt_option("lr", "Adam learning rate", "--lr")]
BatchSize = Annotated[int | None, _dkt_option("batch_size", "windows per batch")]
Window = Annotated[int | None, _dkt_option("window", "longest training window, in answers")]
Patience = Annotated[int | None, _dkt_option(
    "patience", "epochs without a better validation AUC before stopping")]
EMAEpochs = Annotated[float | None, _dkt_option(
    "ema_epochs", "horizon, in epochs, of the moving average of the weights that is validated "
    "and kept; 0 keeps the raw weights")]
DKTPlus = Annotated[bool, typer.Option(
    "--dkt-plus", help="DKT: add DKT+'s regularizers (reconstruction 0.1, waviness L1 0.003 "
                       "and L2 3.0; Yeung & Yeung 2018).")]
#: the weights DKT+'s paper uses on most datasets
DKT_PLUS = {"reg_r": 0.1, "reg_w1": 0.003, "reg_w2": 3.0}


def _dkt_settings(dkt_plus: bool, **options: Any) -> dict[str, Any]:
    """The DKT settings the user gave (None keeps the model's default), with DKT+'s weights
    when ``dkt_plus``."""
    return {**{k: v for k, v in options.items() if v is not None},
            **(DKT_PLUS if dkt_plus else {})}


def _training_progress(progress: Any) -> Any:
    """Adapt a ``(done, total, what)`` bar to DKT's ``(done, total, what, metrics)`` callback,
    showing the running loss and the last validation AUC."""
    def update(done: int, total: int, what: str, metrics: dict[str, float]) -> None:
        shown = "  ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in metrics.items())
        progress(done, total, f"{what}  {shown}".rstrip())

    return update


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Any]:
    """A progress callback ``(done, total, what)`` drawing on stderr (silent when disabled)."""
    if not enabled:
        yield lambda done, total, what: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                  "{task.total}"), TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("starting", total=1)

        def update(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what)

        yield update


@app.command()
def replay(
    train: Annotated[Path | None, typer.Option(help="Answer log to fit on.")] = None,
    test: Annotated[Path | None, typer.Option(help="Answer log to score (else use --folds).")]
    = None,
    checkpoint: Annotated[Path | None, typer.Option(
        help="Score a saved model (from `tutor fit`, or pyBKT coef_ JSON) instead of fitting.")]
    = None,
    format: Annotated[LogFormat, typer.Option("--format", help="Format of both logs.")]
    = LogFormat.dkt3,  # type: ignore[attr-defined]
    model: Annotated[ModelName, typer.Option(help="Knowledge-tracing model.")] = ModelName.bkt,
    folds: Annotated[int | None, typer.Option(help="Learner-level K-fold CV on --train alone.")]
    = None,
    num_fits: Annotated[int, typer.Option(help="EM restarts per skill (best one kept).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same fit.")] = 42,
    item_guess_slip: Annotated[bool, typer.Option(
        help="Guess/slip per item (KT-IDEM) instead of per skill.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write a calibration diagram (PNG).")]
    = None,
    epochs: Epochs = None, hidden: Hidden = None, embed: Embed = None, layers: Layers = None,
    members: Members = None, dropout: Dropout = None, lr: LearningRate = None,
    batch_size: BatchSize = None, window: Window = None, patience: Patience = None,
    ema_epochs: EMAEpochs = None, dkt_plus: DKTPlus = False,
) -> None:
    """Fit a model on one log and score its one-step-ahead predictions on another.

    The protocol is pyBKT's evaluate: every test learner starts from the fitted prior and each
    answer is predicted from that learner's earlier answers only. Give --train and --test,
    --train and --folds, or --checkpoint and --test (a BKT parameter file, pyBKT coef_ JSON,
    or a DKT checkpoint directory from `tutor train dkt`).
    """
    if checkpoint is not None:
        if test is None or train is not None or folds is not None:
            raise fail("--checkpoint scores a saved model: give it with --test FILE only")
    elif train is None or (test is None) == (folds is None):
        raise fail("give either --test FILE or --folds K (with --train alone)")
    dkt = _dkt_settings(dkt_plus, epochs=epochs, hidden=hidden, embed=embed, layers=layers,
                        members=members, dropout=dropout, lr=lr, batch_size=batch_size,
                        window=window, patience=patience, ema_epochs=ema_epochs)
    if model is ModelName.dkt:
        options = {"seed": seed, **dkt}
    elif dkt:
        flag = "dkt-plus" if dkt_plus else next(iter(dkt)).replace("_", "-")
        raise fail(f"--{flag} is a DKT setting: add --model dkt")
    else:
        options = {"num_fits": num_fits, "seed": seed, "item_guess_slip": item_guess_slip}
    try:
        with progress_bar(enabled=True) as progress:
            fit_options = ({"progress": _training_progress(progress)}
                           if model is ModelName.dkt else None)
            if checkpoint is not None:
                assert test is not None
                progress(0, 1, f"reading {test.name}")
                test_log = read_log(test, format.value)
                result, p = score(load_tracer(checkpoint), test_log, progress=progress)
                result["checkpoint"] = str(checkpoint)
                y = test_log.correct
            elif test is not None:
                assert train is not None
                progress(0, 1, f"reading {train.name}")
                train_log = read_log(train, format.value)
                progress(0, 1, f"reading {test.name}")
                test_log = read_log(test, format.value)
                result, p = fit_and_score(model.value, train_log, test_log, options=options,
                                          progress=progress, fit_options=fit_options)
                y = test_log.correct
            else:
                assert train is not None and folds is not None
                progress(0, 1, f"reading {train.name}")
                train_log = read_log(train, format.value)
                result, p = cross_validate(model.value, train_log, folds, seed=seed,
                                           options=options, progress=progress,
                                           fit_options=fit_options)
                y = train_log.correct
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    if plot is not None:
        data = test or train
        assert data is not None
        calibration_plot(y, p, plot, title=f"{result['model']} on {data.name}")
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        _print_result(result)


def _print_result(result: dict[str, Any]) -> None:
    table = Table(title=f"{result['model']}" + (f", {result['folds']}-fold CV"
                                                if "folds" in result else ""))
    table.add_column("metric")
    table.add_column("pooled", justify="right")
    table.add_column("mean per skill", justify="right")
    for metric in ("auc", "rmse", "accuracy", "log_loss"):
        table.add_row(metric, f"{result[metric]:.4f}", f"{result[metric + '_per_skill']:.4f}")
    out.print(table)
    if "fit_seconds" in result:
        out.print(f"fit {result['fit_seconds']:.2f} s on {result['n_train']:,} answers")
    out.print(f"predicted {result['n_test']:,} answers at {result['answers_per_second']:,.0f} "
              "answers/s")
    if result.get("n_test_unseen_skill"):
        out.print(f"{result['n_test_unseen_skill']:,} test answers practise skills absent from "
                  "training; they were predicted with the mean fitted parameters")


@app.command()
def fit(
    train: Annotated[Path, typer.Option(help="Answer log to fit on.")],
    out_path: Annotated[Path, typer.Option("--out", help="Parameter file to write (JSON).")],
    format: Annotated[LogFormat, typer.Option("--format", help="Format of the log.")]
    = LogFormat.dkt3,  # type: ignore[attr-defined]
    model: Annotated[BKTModelName, typer.Option(help="BKT variant (DKT: `tutor train dkt`).")]
    = BKTModelName.bkt,
    num_fits: Annotated[int, typer.Option(help="EM restarts per skill (best one kept).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same fit.")] = 42,
    item_guess_slip: Annotated[bool, typer.Option(
        help="Guess/slip per item (KT-IDEM) instead of per skill.")] = False,
    pybkt: Annotated[bool, typer.Option(
        help="Write pyBKT's coef_ shape instead of the versioned file.")] = False,
) -> None:
    """Fit a BKT model on a log and save its parameters (score it later with replay
    --checkpoint)."""
    try:
        with progress_bar(enabled=True) as progress:
            progress(0, 2, f"reading {train.name}")
            log = read_log(train, format.value)
            progress(1, 2, f"fitting {model.value} on {len(log):,} answers")
            tracer = make_tracer(model.value, num_fits=num_fits, seed=seed,
                                 item_guess_slip=item_guess_slip).fit(log)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    if pybkt:
        out_path.write_text(json.dumps(tracer.to_pybkt(), indent=1))  # type: ignore[attr-defined]
    else:
        tracer.save(out_path)
    out.print(f"fitted {model.value} on {len(log):,} answers, "
              f"{len(np.unique(log.skill_codes))} skills -> {out_path}")


train_app = typer.Typer(help="Train neural knowledge-tracing models.", no_args_is_help=True)
app.add_typer(train_app, name="train")


@train_app.command("dkt")
def train_dkt(
    train: Annotated[Path, typer.Option(help="Answer log to train on.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Checkpoint directory to write.")],
    valid: Annotated[Path | None, typer.Option(
        help="Log for early stopping (else 10% of the training learners are held out).")]
    = None,
    format: Annotated[LogFormat, typer.Option("--format", help="Format of the logs.")]
    = LogFormat.dkt3,  # type: ignore[attr-defined]
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same model.")] = 42,
    resume: Annotated[bool, typer.Option(
        help="Continue the interrupted run whose checkpoint is in --out.")] = False,
    device: Annotated[str | None, typer.Option(
        help="PyTorch device (default cuda when present, else cpu).")] = None,
    epochs: Epochs = None, hidden: Hidden = None, embed: Embed = None, layers: Layers = None,
    members: Members = None, dropout: Dropout = None, lr: LearningRate = None,
    batch_size: BatchSize = None, window: Window = None, patience: Patience = None,
    ema_epochs: EMAEpochs = None, dkt_plus: DKTPlus = False,
) -> None:
    """Train Deep Knowledge Tracing (an LSTM, Piech et al. 2015) with early stopping.

    After every epoch --out holds the best model so far (servable, and scored by `tutor replay
    --checkpoint DIR`) and what --resume needs to continue.
    """
    from engine.tracing.dkt import DKT

    if out_dir.exists() and not out_dir.is_dir():
        raise fail(f"--out {out_dir} is a file; give a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not resume:
        raise fail(f"--out {out_dir} is not empty: add --resume to continue that run, or give "
                   "a new directory")
    options = _dkt_settings(dkt_plus, epochs=epochs, hidden=hidden, embed=embed,
                            layers=layers, members=members, dropout=dropout, lr=lr,
                            batch_size=batch_size, window=window, patience=patience,
                            ema_epochs=ema_epochs)
    try:
        model = DKT(seed=seed, **options)
        with progress_bar(enabled=True) as progress:
            progress(0, 1, f"reading {train.name}")
            log = read_log(train, format.value)
            valid_log = None
            if valid is not None:
                progress(0, 1, f"reading {valid.name}")
                valid_log = read_log(valid, format.value)
            model.fit(log, valid_log, progress=_training_progress(progress),
                      checkpoint=out_dir, resume=resume, device=device)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    summary = model.training_
    out.print(f"trained dkt on {summary['n_train']:,} answers in "
              f"{summary['train_seconds']:.0f} s: best validation AUC "
              f"{summary['best_valid_auc']:.4f} at epoch {summary['best_epoch']} of "
              f"{summary['epochs_run']} -> {out_dir}")


@app.command()
def demo(
    learners: Annotated[int, typer.Option(help="Simulated learners.")] = 600,
    skills: Annotated[int, typer.Option(help="Simulated skills.")] = 6,
    seed: Annotated[int, typer.Option(help="Seed of the simulation and the fit.")] = 7,
) -> None:
    """Simulate learners from known BKT parameters, fit, replay and trace one learner online.

    Runs in seconds with nothing but this package: a first look at what the engine does.
    """
    from engine.events import AnswerEvent
    from engine.tracing import BKT
    from engine.tracing.simulate import random_params, simulate

    if learners < 4 or skills < 1:
        raise fail("need at least 4 learners and 1 skill")
    truth = random_params(skills, seed=seed)
    log, _ = simulate(truth, learners, seed=seed + 1)
    holdout = np.isin(log.learner, np.arange(0, log.n_learners, 4))
    train, test = log.take(~holdout), log.take(holdout)
    result, _ = fit_and_score("bkt", train, test, options={"seed": seed})
    model = BKT(seed=seed).fit(train)
    fitted = model.to_pybkt()

    table = Table(title=f"Parameter recovery: {len(train):,} simulated answers, "
                        f"{len(np.unique(train.learner))} learners")
    table.add_column("skill")
    for name in ("prior", "learn", "guess", "slip"):
        table.add_column(f"{name} true / fitted", justify="right")
    for k, skill in enumerate(truth.skills):
        got = fitted[skill]
        table.add_row(skill, *(f"{t:.2f} / {f:.2f}" for t, f in (
            (truth.prior[k], got["prior"]), (truth.learn[k], got["learns"][0]),
            (truth.guess[k], got["guesses"][0]), (truth.slip[k], got["slips"][0]))))
    out.print(table)
    out.print(f"Replay on {len(test):,} held-out answers: AUC {result['auc']:.3f}, RMSE "
              f"{result['rmse']:.3f}, accuracy {result['accuracy']:.3f} (fit "
              f"{result['fit_seconds']:.2f} s)")

    skill = truth.skills[0]
    state = model.new_state()
    out.print(f"\nOne new learner practising {skill}, answer by answer:")
    for correct in (False, True, False, True, True, True):
        before = model.predict_correct(state, skill, [skill])
        state = model.update(state, AnswerEvent("demo", skill, (skill,), correct))
        out.print(f"  predicted P(correct) {before:.2f}, answered "
                  f"{'right' if correct else 'wrong'} -> P(mastered) "
                  f"{model.mastery(state, [skill])[skill]:.2f}")


register_service_commands(app)

if __name__ == "__main__":
    app()
