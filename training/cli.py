"""The research commands of ``tutor``: fit, replay, demo (mounted by :mod:`tutor.cli`).

Every model of the registry (:data:`engine.tracing.MODELS`) is fitted, saved and scored the
same way; options that belong to one model family (EM restarts, network sizes...) are passed
only when given, and a model that does not take one says so.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from engine.memory import MEMORY_MODELS
from engine.tracing import MODELS, load_tracer, make_tracer
from engine.tracing.dkt_config import DKTConfig
from engine.tracing.registry import to_pybkt
from training.readers import FORMATS, read_log
from training.readers.reviews import REVIEW_COLUMNS, read_reviews
from training.replay import (
    FOLD_METRICS,
    calibration_plot,
    chrono_replay,
    cross_validate,
    fit_and_score,
    score,
)
from training.review_replay import DEFAULT_SPLIT, replay_reviews
from training.splits import parse_split
from tutor.console import fail, out, progress_bar, use_threads, writable

# ------------------------------------------------------------------ options shared by commands


def _one_of(choices: tuple[str, ...]) -> Any:
    """An option parser accepting only ``choices`` (names from the registry or the readers)."""
    def parse(value: str) -> str:
        if value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return parse


Format = Annotated[str, typer.Option(
    "--format", parser=_one_of(FORMATS), metavar="[" + "|".join(FORMATS) + "]",
    help="Format of the log(s): dkt3 (3-line DKT files), pybkt (pyBKT's CSV: "
    "ASSISTments or KDD column names), assistments (raw skill-builder export), pykt, csv or "
    "parquet (the generic table: columns learner, item, skills (';'-separated), correct (0/1), "
    "and optionally timestamp, response_ms, attempt, hints, session, event_id). Other column "
    "names: --column.")]
Columns = Annotated[list[str] | None, typer.Option(
    "--column", metavar="FIELD=NAME",
    help="For pybkt, csv and parquet: read FIELD from column NAME (repeatable), e.g. "
         "--column learner=user_id --column skills=skill_name. Fields: learner, item, skills, "
         "correct, order, timestamp, response_ms, attempt, hints, session, event_id.")]
Model = Annotated[str, typer.Option(
    parser=_one_of(tuple(MODELS)), metavar="[" + "|".join(MODELS) + "]",
    help="Knowledge-tracing model: " + "; ".join(
        f"{name}: {spec.summary}" for name, spec in MODELS.items()) + ".")]
#: replay also reads flashcard review logs, scored with the memory models
REPLAY_FORMATS = (*FORMATS, "reviews")
ReplayFormat = Annotated[str, typer.Option(
    "--format", parser=_one_of(REPLAY_FORMATS), metavar="[" + "|".join(REPLAY_FORMATS) + "]",
    help=Format.__metadata__[0].help + " reviews: a flashcard review log (columns "
    + ", ".join(REVIEW_COLUMNS) + "; rating >= 2 is recalled), scored with a memory model "
    "(--model " + "|".join(MEMORY_MODELS) + ") on a chronological split (--split).")]
REPLAY_MODELS = (*MODELS, *MEMORY_MODELS)
ReplayModel = Annotated[str, typer.Option(
    parser=_one_of(REPLAY_MODELS), metavar="[" + "|".join(REPLAY_MODELS) + "]",
    help=Model.__metadata__[0].help + " Memory models (--format reviews): " + "; ".join(
        f"{name}: {spec.summary}" for name, spec in MEMORY_MODELS.items()) + ".")]
Split = Annotated[str | None, typer.Option(
    metavar="chrono:FRACTION",
    help=f"Chronological split of --train: the earliest FRACTION of the events train, the rest "
         f"are predicted (--format reviews: default {DEFAULT_SPLIT}). Answer logs are split "
         "within each learner: the first FRACTION of every learner's answers train, and each "
         "later answer is predicted from all of that learner's earlier ones.")]
Seed = Annotated[int, typer.Option(help="Seed: the same seed gives the same fit.")]
Threads = Annotated[int | None, typer.Option(
    help="Threads for numerical work (PyTorch, numba). Default: half the cores (1 on 2 "
         "cores): on a shared machine more threads than free cores slow training 10x.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]

# BKT's options (None: the model's default)
NumFits = Annotated[int | None, typer.Option(help="BKT: EM restarts per skill, the best kept "
                                                  "(default 5).")]
ItemGuessSlip = Annotated[bool | None, typer.Option(
    "--item-guess-slip/--skill-guess-slip", show_default=False,
    help="BKT: guess/slip per item (KT-IDEM) instead of per skill (default per skill).")]


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


def _model_options(model: str, seed: int, dkt_plus: bool, **given: Any) -> dict[str, Any]:
    """The options the user gave (None: the model's default), checked against the model."""
    options = {"seed": seed, **{k: v for k, v in given.items() if v is not None},
               **(DKT_PLUS if dkt_plus else {})}
    spec = MODELS[model]
    unknown = [k for k in options if not spec.accepts(k)]
    if unknown:
        flag = "dkt-plus" if dkt_plus and unknown[0] in DKT_PLUS else unknown[0]
        raise fail(f"--{flag.replace('_', '-')} does not apply to --model {model}")
    return options


def _mapping(columns: list[str] | None) -> dict[str, str] | None:
    """``--column FIELD=NAME`` options as a mapping (None when there are none)."""
    if not columns:
        return None
    mapping: dict[str, str] = {}
    for entry in columns:
        field, sep, name = entry.partition("=")
        if not sep or not field.strip() or not name.strip():
            raise fail(f"--column takes FIELD=NAME (e.g. learner=user_id), got {entry!r}")
        mapping[field.strip()] = name.strip()
    return mapping


def _read(path: Path, format: str, columns: list[str] | None, report: Any) -> Any:
    report(0, 1, f"reading {path.name}", {})
    return read_log(path, format, mapping=_mapping(columns))


# ================================================================== commands
def replay(
    train: Annotated[Path | None, typer.Option(help="Answer log to fit on.")] = None,
    test: Annotated[Path | None, typer.Option(help="Answer log to score (else use --folds).")]
    = None,
    checkpoint: Annotated[Path | None, typer.Option(
        help="Score a saved model (from `tutor fit`, or pyBKT coef_ JSON) instead of fitting.")]
    = None,
    format: ReplayFormat = "dkt3",
    column: Columns = None,
    model: ReplayModel = "bkt",
    folds: Annotated[int | None, typer.Option(
        help="Learner-level K-fold CV on --train alone: metrics over all out-of-fold "
             "predictions together, and their spread over folds.")] = None,
    split: Split = None,
    seed: Seed = 42,
    threads: Threads = None,
    as_json: AsJson = False,
    plot: Annotated[Path | None, typer.Option(help="Write a calibration diagram (PNG).")]
    = None,
    num_fits: NumFits = None, item_guess_slip: ItemGuessSlip = None,
    epochs: Epochs = None, hidden: Hidden = None, embed: Embed = None, layers: Layers = None,
    members: Members = None, dropout: Dropout = None, lr: LearningRate = None,
    batch_size: BatchSize = None, window: Window = None, patience: Patience = None,
    ema_epochs: EMAEpochs = None, dkt_plus: DKTPlus = False,
) -> None:
    """Fit a model on one log and score its one-step-ahead predictions on another.

    The protocol is pyBKT's evaluate: every test learner starts from the fitted prior and each
    answer is predicted from that learner's earlier answers only. Give --train and --test,
    --train and --folds, or --checkpoint and --test (a saved model from `tutor fit`, or pyBKT
    coef_ JSON). With --format reviews, a memory model is fitted on the first part of --train
    (--split, default chrono:0.7) and predicts the rest online, each card from all its earlier
    reviews; scored are the reviews a day or more after the card's previous one.
    """
    if format == "reviews" or model in MEMORY_MODELS:
        _replay_reviews(train, test, checkpoint, folds, format, column, model, split, threads,
                        as_json, plot)
        return
    if split is not None:
        if train is None or test is not None or folds is not None or checkpoint is not None:
            raise fail("--split splits one log within each learner: give --train FILE alone "
                       "(no --test, --folds or --checkpoint)")
    elif checkpoint is not None:
        if test is None or train is not None or folds is not None:
            raise fail("--checkpoint scores a saved model: give it with --test FILE only")
    elif train is None or (test is None) == (folds is None):
        raise fail("give either --test FILE or --folds K (with --train alone)")
    if plot is not None:
        writable(plot, "--plot")
    options = _model_options(
        model, seed, dkt_plus, num_fits=num_fits, item_guess_slip=item_guess_slip,
        epochs=epochs, hidden=hidden, embed=embed, layers=layers, members=members,
        dropout=dropout, lr=lr, batch_size=batch_size, window=window, patience=patience,
        ema_epochs=ema_epochs)
    use_threads(threads)
    try:
        with progress_bar() as report:
            if checkpoint is not None:
                assert test is not None
                test_log = _read(test, format, column, report)
                result, p = score(load_tracer(checkpoint), test_log, progress=report)
                result["checkpoint"] = str(checkpoint)
                y = test_log.correct
            elif test is not None:
                assert train is not None
                train_log = _read(train, format, column, report)
                test_log = _read(test, format, column, report)
                result, p = fit_and_score(model, train_log, test_log, options=options,
                                          progress=report)
                y = test_log.correct
            elif split is not None:
                assert train is not None
                train_log = _read(train, format, column, report)
                result, p, test_log = chrono_replay(model, train_log, parse_split(split),
                                                    options=options, progress=report)
                y = test_log.correct
            else:
                assert train is not None and folds is not None
                train_log = _read(train, format, column, report)
                result, p = cross_validate(model, train_log, folds, seed=seed,
                                           options=options, progress=report)
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


def _replay_reviews(train: Path | None, test: Path | None, checkpoint: Path | None,
                    folds: int | None, format: str, column: list[str] | None, model: str,
                    split: str | None,
                    threads: int | None, as_json: bool, plot: Path | None) -> None:
    """`tutor replay --format reviews`: the review-log protocol of training/review_replay.py."""
    if model not in MEMORY_MODELS:
        raise fail(f"--format reviews takes a memory model (--model {'|'.join(MEMORY_MODELS)}), "
                   f"got {model!r}")
    if format != "reviews":
        raise fail(f"--model {model} is a memory model: it reads review logs (--format reviews)")
    if train is None or test is not None or checkpoint is not None or folds is not None:
        raise fail("--format reviews splits one log by time: give --train FILE (and --split "
                   "chrono:FRACTION), not --test, --folds or --checkpoint")
    if column:
        raise fail("--column does not apply to --format reviews: its columns are "
                   + ", ".join(REVIEW_COLUMNS))
    if plot is not None:
        writable(plot, "--plot")
    use_threads(threads)
    try:
        chosen = DEFAULT_SPLIT if split is None else parse_split(split)
        with progress_bar() as report:
            report(0, 1, f"reading {train.name}", {})
            reviews = read_reviews(train)
            result, p, scored = replay_reviews(model, reviews, split=chosen, progress=report)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    if plot is not None:
        calibration_plot(reviews.recalled[scored], p[scored], plot,
                         title=f"{model} on {train.name} ({result['split']})")
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    table = Table(title=f"{model} on {train.name}: {result['split']}, {result['n_test']:,} "
                        "scored test reviews")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for metric in ("log_loss", "rmse", "rmse_bins", "auc"):
        table.add_row(metric, f"{result[metric]:.4f}")
    out.print(table)
    out.print(f"fitted on {result['n_train']:,} reviews ({result['n_train_scored']:,} scored) "
              f"in {result['fit_seconds']:.1f} s; {result['n_cards']:,} cards")


def _print_result(result: dict[str, Any]) -> None:
    folds = result.get("folds")
    table = Table(title=f"{result['model']}" + (f", {folds}-fold CV (out-of-fold predictions "
                                                "pooled)" if folds else ""))
    table.add_column("metric")
    table.add_column("pooled", justify="right")
    table.add_column("mean per skill", justify="right")
    if folds:
        table.add_column("over folds: mean ± sd", justify="right")
    for metric in FOLD_METRICS:
        row = [metric, f"{result[metric]:.4f}", f"{result[metric + '_per_skill']:.4f}"]
        if folds:
            row.append(f"{result[metric + '_fold_mean']:.4f} ± "
                       f"{result[metric + '_fold_std']:.4f}")
        table.add_row(*row)
    out.print(table)
    if "fit_seconds" in result:
        out.print(f"fit {result['fit_seconds']:.2f} s on {result['n_train']:,} answers"
                  + (" per fold" if folds else ""))
    out.print(f"predicted {result['n_test']:,} answers at {result['answers_per_second']:,.0f} "
              "answers/s")
    if result.get("n_test_unseen_skill"):
        out.print(f"{result['n_test_unseen_skill']:,} test answers practise skills absent from "
                  "training; they were predicted with the mean fitted parameters")


def fit(
    train: Annotated[Path, typer.Option(help="Answer log to fit on.")],
    out_path: Annotated[Path, typer.Option(
        "--out", help="Where to save the model: a parameter file (BKT) or a checkpoint "
                      "directory (DKT, written after every epoch).")],
    valid: Annotated[Path | None, typer.Option(
        help="Log for early stopping (models that stop early: else 10% of the training "
             "learners are held out).")] = None,
    format: Format = "dkt3",
    column: Columns = None,
    model: Model = "bkt",
    seed: Seed = 42,
    threads: Threads = None,
    resume: Annotated[bool, typer.Option(
        help="DKT: continue the interrupted run whose checkpoint is in --out.")] = False,
    device: Annotated[str | None, typer.Option(
        help="DKT: PyTorch device (default cuda when present, else cpu).")] = None,
    pybkt: Annotated[bool, typer.Option(
        help="BKT: write pyBKT's coef_ shape instead of the versioned file.")] = False,
    num_fits: NumFits = None, item_guess_slip: ItemGuessSlip = None,
    epochs: Epochs = None, hidden: Hidden = None, embed: Embed = None, layers: Layers = None,
    members: Members = None, dropout: Dropout = None, lr: LearningRate = None,
    batch_size: BatchSize = None, window: Window = None, patience: Patience = None,
    ema_epochs: EMAEpochs = None, dkt_plus: DKTPlus = False,
) -> None:
    """Fit a model on a log and save it (serve it with `tutor model register`, score it with
    `tutor replay --checkpoint`)."""
    spec = MODELS[model]
    directory = spec.accepts("checkpoint")
    writable(out_path, "--out", directory=directory)
    if directory and out_path.is_dir() and any(out_path.iterdir()) and not resume:
        raise fail(f"--out {out_path} is not empty: add --resume to continue that run, or give "
                   "a new directory")
    options = _model_options(
        model, seed, dkt_plus, num_fits=num_fits, item_guess_slip=item_guess_slip,
        epochs=epochs, hidden=hidden, embed=embed, layers=layers, members=members,
        dropout=dropout, lr=lr, batch_size=batch_size, window=window, patience=patience,
        ema_epochs=ema_epochs, resume=resume or None, device=device,
        checkpoint=out_path if directory else None)
    use_threads(threads)
    try:
        tracer = make_tracer(model, **options)
        with progress_bar() as report:
            log = _read(train, format, column, report)
            valid_log = None if valid is None else _read(valid, format, column, report)
            started = time.perf_counter()
            tracer.fit(log, valid=valid_log, progress=report)
            seconds = time.perf_counter() - started
        if pybkt:
            out_path.write_text(json.dumps(to_pybkt(tracer), indent=1))
        else:
            tracer.save(out_path)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    summary = tracer.fit_summary()
    out.print(f"fitted {tracer.name} on {len(log):,} answers, {len(tracer.skills)} skills in "
              f"{seconds:.1f} s" + (f"; {summary}" if summary else "") + f" -> {out_path}")


def train_dkt(ctx: typer.Context) -> None:
    """Same as `tutor fit --model dkt` (kept for existing scripts; see `tutor fit --help`)."""
    code = ctx.find_root().command.main(["fit", "--model", "dkt", *ctx.args],
                                        standalone_mode=False)
    if code:
        raise typer.Exit(code)


def demo(
    learners: Annotated[int, typer.Option(help="Simulated learners.")] = 600,
    skills: Annotated[int, typer.Option(help="Simulated skills.")] = 6,
    seed: Annotated[int, typer.Option(help="Seed of the simulation and the fit.")] = 7,
) -> None:
    """Simulate learners from known BKT parameters, fit, replay and trace one learner online.

    Runs in seconds with nothing but this package: a first look at what the engine does.
    """
    from engine.events import AnswerEvent
    from engine.tracing.simulate import random_params, simulate

    if learners < 4 or skills < 1:
        raise fail("need at least 4 learners and 1 skill")
    truth = random_params(skills, seed=seed)
    log, _ = simulate(truth, learners, seed=seed + 1)
    holdout = np.isin(log.learner, np.arange(0, log.n_learners, 4))
    train, test = log.take(~holdout), log.take(holdout)
    result, _ = fit_and_score("bkt", train, test, options={"seed": seed})
    model = make_tracer("bkt", seed=seed).fit(train)
    fitted = to_pybkt(model)

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


_PICTURE_SUFFIXES = (".png", ".svg", ".pdf")


def _picture(path: Path) -> None:
    """Fail now if ``path`` is not a picture file name that can be written."""
    if path.suffix.lower() not in _PICTURE_SUFFIXES:
        raise fail(f"--out must end in {', '.join(_PICTURE_SUFFIXES)}, got {path.name!r}")
    writable(path, "--out")
    path.parent.mkdir(parents=True, exist_ok=True)


def _load_pack(pack: str) -> Any:
    from content.packs import load_pack
    from engine.catalog import ContentError
    from training.plots import find_pack

    try:
        return load_pack(find_pack(pack))
    except (FileNotFoundError, ContentError) as exc:
        raise fail(str(exc)) from None


PlotOut = Annotated[Path, typer.Option("--out", help="Picture to write (.png, .svg or .pdf).")]


def plot_graph(
    pack: Annotated[str, typer.Argument(
        help="A bundled pack by name or short name (math, vocab), or a pack file.")],
    out_path: PlotOut,
) -> None:
    """Draw a content pack's prerequisite graph.

    Skills in rows by prerequisite depth, an arrow from each prerequisite to the skill that
    needs it, skills coloured by course when the pack has several.
    """
    from training.plots import plot_graph as draw

    _picture(out_path)
    loaded = _load_pack(pack)
    draw(loaded, out_path)
    out.print(f"wrote the prerequisite graph of {loaded.name!r} ({len(loaded.skills)} skills) "
              f"to {out_path}")


def plot_mastery(
    out_path: PlotOut,
    pack: Annotated[str, typer.Option(
        help="A bundled pack by name or short name (math, vocab), or a pack file.")] = "math",
    answers: Annotated[int, typer.Option(help="Answers the learner gives (fewer if nothing is "
                                              "left to recommend).")] = 80,
    seed: Annotated[int, typer.Option(help="Seed of the answers drawn and of selection's "
                                           "tie-breaks: the same seed gives the same "
                                           "learner.")] = 7,
    model_file: Annotated[Path | None, typer.Option(
        help="A saved model knowing the pack's skills (what `tutor fit` wrote, or pyBKT coef_ "
             "JSON); default: the pack's own BKT parameters.")] = None,
) -> None:
    """Draw one simulated learner's mastery of each skill over their answers.

    The engine's selection policy picks each next item (as the API does), the answer is right
    with the probability the model predicts, and the model updates the learner's state.
    """
    from content.packs import catalog_from_packs
    from training.plots import plot_mastery as draw
    from training.plots import simulate_learner

    if answers < 1:
        raise fail(f"--answers must be at least 1, got {answers}")
    _picture(out_path)
    loaded = _load_pack(pack)
    catalog = catalog_from_packs([loaded])
    try:
        tracer = catalog.tracer() if model_file is None else load_tracer(model_file)
        run = simulate_learner(tracer, catalog, answers, seed)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    model = "the pack's BKT parameters" if model_file is None else f"{tracer.name} model"
    draw(run, catalog, out_path, title=f"One simulated learner, pack {loaded.name} ({model}, seed "
                                       f"{seed}): {int(run.correct.sum())} of {len(run)} answers "
                                       "right")
    out.print(f"wrote {len(run)} answers on {len(run.skills)} skills to {out_path}"
              + (f" (stopped early: {run.stopped})" if run.stopped else ""))


def register(app: typer.Typer) -> None:
    """Add the research commands to the ``tutor`` command line."""
    app.command()(replay)
    app.command()(fit)
    app.command()(demo)
    train_app = typer.Typer(help="Same as `tutor fit --model ...` (kept for existing scripts).",
                            no_args_is_help=True)
    train_app.command("dkt", context_settings={"allow_extra_args": True,
                                               "ignore_unknown_options": True,
                                               "help_option_names": []})(train_dkt)
    app.add_typer(train_app, name="train")
    plot_app = typer.Typer(help="Pictures: a content pack's prerequisite graph, one simulated "
                                "learner's mastery (calibration: `tutor replay --plot`).",
                           no_args_is_help=True)
    plot_app.command("graph")(plot_graph)
    plot_app.command("mastery")(plot_mastery)
    app.add_typer(plot_app, name="plot")
