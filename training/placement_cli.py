"""The placement commands of ``tutor``: ``calibrate`` (item parameters from an answer log) and
``placement simulate`` (a CAT configuration on simulated examinees with ``--bank``; with
``--course``, the per-skill test against the θ test on simulated learners who know part of a
course). Mounted by :mod:`tutor.cli`; the work is done by :mod:`engine.placement` and
:mod:`engine.simulation.placement_value`."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from content.packs import load_pack
from engine.catalog import ContentError
from engine.placement import (
    CALIBRATION_MODELS,
    CRITERIA,
    ESTIMATORS,
    PRIORS,
    Placement,
    StopRule,
    calibrate_log,
    read_bank,
    simulate,
    sympson_hetter,
    write_bank,
)
from training.cli import AsJson, Columns, Format, _mapping, _one_of
from training.readers import read_log
from tutor.console import fail, out, progress_bar, writable

#: seed offset of the examinees that set Sympson-Hetter's parameters (never the scored ones)
_SH_SEED_OFFSET = 1_000_003


def calibrate(
    train: Annotated[Path, typer.Option(help="Answer log to calibrate the items on.")],
    out_path: Annotated[Path, typer.Option(
        "--out", help="Item-bank file to write (tab-separated: item a b c d Group, standard "
                      "errors, answers, source); `tutor placement simulate --bank` reads it.")],
    format: Format = "csv",
    column: Columns = None,
    model: Annotated[str, typer.Option(
        parser=_one_of(CALIBRATION_MODELS), metavar="[2pl|3pl]",
        help="IRT model: 2pl, or 3pl (guessing with a Beta(5, 17) prior).")] = "2pl",
    prior: Annotated[str | None, typer.Option(
        parser=_one_of(PRIORS), metavar="[" + "|".join(PRIORS) + "]",
        help="Priors of the slopes and difficulties: empirical (estimated from the bank, "
             "each item borrowing strength from the others) or none (maximum likelihood). "
             "Default: empirical for the 2pl, none for the 3pl.")] = None,
    pack: Annotated[Path | None, typer.Option(
        help="Content pack whose items' IRT values (difficulty, discrimination, guessing) "
             "are kept for items with too few answers.")] = None,
    min_answers: Annotated[int, typer.Option(
        help="Fewest learners' first answers to fit an item.")] = 30,
    as_json: AsJson = False,
) -> None:
    """Fit 2PL or 3PL item parameters, with standard errors, to the learners' first answers to
    each item (marginal maximum likelihood, EM on a quadrature grid, with empirical-Bayes
    priors by default)."""
    writable(out_path, "--out")
    try:
        keep = _pack_values(pack) if pack is not None else None
        with progress_bar() as report:
            report(0, 1, f"reading {train.name}", {})
            log = read_log(train, format, mapping=_mapping(column))
            result = calibrate_log(log, model, prior=prior, min_answers=min_answers, keep=keep,
                                   progress=lambda i, n, ll: report(i, n, "EM",
                                                                    {"log_lik": ll}))
    except (FileNotFoundError, ValueError, ContentError) as exc:
        raise fail(str(exc)) from None
    text = {name: [_number(v) for v in values] for name, values in result.se.items()}
    write_bank(result.bank, out_path, {
        **{f"se_{name}": column for name, column in text.items()},
        "answers": [str(n) for n in result.answers], "source": list(result.source)})
    summary = {
        "model": model, "prior": "none" if result.hyper is None else "empirical",
        "hyperparameters": None if result.hyper is None else asdict(result.hyper),
        "items": len(result.bank),
        "fitted": result.source.count("fit"),
        "kept": result.source.count("kept"), "dropped": list(result.dropped),
        "iterations": result.iterations, "converged": result.converged,
        "log_likelihood": result.log_likelihood, "out": str(out_path),
    }
    if as_json:
        print(json.dumps(summary))
        return
    out.print(f"calibrated {summary['fitted']} items ({model}, {result.iterations} EM "
              f"iterations{'' if result.converged else ', NOT converged'}), kept "
              f"{summary['kept']} from the pack, dropped {len(result.dropped)} with fewer than "
              f"{min_answers} answers -> {out_path}")


def _number(value: float) -> str:
    return "" if np.isnan(value) else f"{value:.4g}"


def _pack_values(path: Path) -> dict[str, tuple[float, float, float]]:
    """The pack's items that have IRT values (a defaults to 1 and c to 0 when not given)."""
    return {item.id: (item.discrimination or 1.0, item.difficulty, item.guessing or 0.0)
            for item in load_pack(path).items if item.difficulty is not None}


def simulate_command(
    bank: Annotated[Path | None, typer.Option(
        help="Item bank: tab-separated a b c d Group (θ accuracy of a CAT).")] = None,
    course: Annotated[str | None, typer.Option(
        help="Instead of --bank: a course of the bundled packs or generated:N[:SEED]; reports "
             "each skill's classification accuracy after --length items (default 20) for the "
             "per-skill test, the θ test mapped to the skills, and no test, on learners who "
             "know a random prerequisite-closed --known-share of the course each.")] = None,
    known_share: Annotated[float, typer.Option(
        help="--course: the share of the course's skills each learner knows.")] = 0.5,
    learner_model: Annotated[list[str] | None, typer.Option(
        help="--course: learner-model family answering (repeat; default: every family with "
             "a prior-knowledge rule: irt-memory, prereq-forget).")] = None,
    examinees: Annotated[int, typer.Option(
        help="Simulated examinees, θ ~ N(0, 1) (--course: learners per family).")] = 1000,
    seed: Annotated[int, typer.Option(
        help="Seed of the examinees' abilities, answers and random draws: the same seed gives "
             "the same results.")] = 42,
    length: Annotated[int | None, typer.Option(help="Fixed test length.")] = None,
    stop_se: Annotated[float | None, typer.Option(
        help="Stop once the standard error is at most this (with --max-length).")] = None,
    min_length: Annotated[int, typer.Option(help="Fewest items with --stop-se.")] = 1,
    max_length: Annotated[int, typer.Option(help="Most items with --stop-se.")] = 40,
    selection: Annotated[str, typer.Option(
        parser=_one_of(CRITERIA), metavar="[" + "|".join(CRITERIA) + "]",
        help="Item selection: Fisher information at θ̂, averaged over the posterior, or "
             "posterior-weighted Kullback-Leibler information.")] = "posterior-info",
    exposure: Annotated[float | None, typer.Option(
        help="Sympson-Hetter: the largest share of examinees an item may be given to (its "
             "parameters are first set on other simulated examinees).")] = None,
    randomesque: Annotated[int, typer.Option(
        help="Randomesque: draw each item among this many best.")] = 1,
    balance: Annotated[bool, typer.Option(
        help="Content balancing: each Group's share of a test is its share of the bank.")]
    = False,
    estimator: Annotated[str, typer.Option(
        parser=_one_of(ESTIMATORS), metavar="[" + "|".join(ESTIMATORS) + "]",
        help="Final θ estimate (selection always uses EAP).")] = "eap",
    as_json: AsJson = False,
) -> None:
    """Give a CAT to simulated examinees and report θ accuracy, exposure and time per step
    (--json keys: theta_rmse, bias, corr, mean_length, max_exposure, unused_share,
    step_ms_p99, and more). With --course: per-skill classification accuracy of the per-skill
    test and of the θ test (--json keys: course, skills, learners, items, known_share,
    families: {FAMILY: {skills, theta, prior: {mean, ci95, n}}})."""
    if (bank is None) == (course is None):
        raise fail("give either --bank FILE (a CAT's θ accuracy) or --course COURSE (per-skill "
                   "classification accuracy)")
    if course is not None:
        if stop_se is not None or exposure is not None or balance or randomesque != 1:
            raise fail("--course runs fixed-length tests (--length): --stop-se, --exposure, "
                       "--balance and --randomesque are --bank options")
        _course_mode(course, examinees, seed, 20 if length is None else length, known_share,
                     learner_model, as_json)
        return
    assert bank is not None
    if (length is None) == (stop_se is None):
        raise fail("give either --length K (fixed length) or --stop-se S (with --max-length)")
    if examinees < 2:
        raise fail(f"--examinees must be at least 2, got {examinees}")
    if exposure is not None and not 0 < exposure <= 1:
        raise fail(f"--exposure must be in (0, 1], got {exposure}")
    try:
        items = read_bank(bank)
        stop = (StopRule(length, length) if length is not None
                else StopRule(min_length, max_length, stop_se))
        shares = ({g: items.groups.count(g) / len(items) for g in items.group_names}
                  if balance else None)
        placement = Placement(items, criterion=selection, randomesque=randomesque,
                              balance=shares, stop=stop, estimator=estimator)
    except ValueError as exc:
        raise fail(str(exc)) from None
    thetas = np.random.default_rng(seed).normal(size=examinees)
    with progress_bar() as report:
        if exposure is not None:
            others = np.random.default_rng(seed + _SH_SEED_OFFSET).normal(size=examinees)
            control = sympson_hetter(placement, exposure, others, seed=seed + _SH_SEED_OFFSET,
                                     progress=lambda i, n: report(i, n, "Sympson-Hetter", {}))
            placement = replace(placement, control=control)
        result = simulate(placement, thetas, seed,
                          progress=lambda i, n: report(i, n, "examinees", {}))
    summary = {"bank": str(bank), "items": len(items), "examinees": examinees, "seed": seed,
               **result.summary()}
    if as_json:
        print(json.dumps(summary))
        return
    for key, value in summary.items():
        out.print(f"{key:>14}  {value:.4f}" if isinstance(value, float) else
                  f"{key:>14}  {value}")


def _course_mode(spec: str, learners: int, seed: int, length: int, known_share: float,
                 families: list[str] | None, as_json: bool) -> None:
    """``placement simulate --course``: see :func:`simulate_command`."""
    from engine.simulation.metrics import mean_ci
    from engine.simulation.placement_value import PRIOR_KNOWLEDGE, classification
    from training.simulate_cli import load_course

    if learners < 2 or length < 1:
        raise fail(f"--examinees must be at least 2 and --length at least 1, got {learners} "
                   f"and {length}")
    chosen = families or sorted(PRIOR_KNOWLEDGE)
    unknown = [f for f in chosen if f not in PRIOR_KNOWLEDGE]
    if unknown:
        raise fail(f"--learner-model {unknown[0]!r}: the placement simulation supports "
                   f"{', '.join(sorted(PRIOR_KNOWLEDGE))}")
    try:
        catalog, course = load_course(spec)
        results = {}
        with progress_bar() as report:
            for k, family in enumerate(chosen):
                report(k, len(chosen), family, {})
                accuracy = classification(family, catalog, course, n=learners, seed=seed,
                                          length=length, known_share=known_share)
                results[family] = {arm: mean_ci(a) for arm, a in accuracy.items()}
    except ValueError as exc:
        raise fail(str(exc)) from None
    summary = {"course": spec, "skills": len(catalog.courses[course].skills),
               "learners": learners, "items": length, "known_share": known_share,
               "seed": seed, "families": results}
    if as_json:
        print(json.dumps(summary))
        return
    out.print(f"per-skill classification accuracy after {length} items, {learners} learners "
              f"per family who know a random prerequisite-closed {known_share:.0%} of {spec} "
              f"({summary['skills']} skills) each [95% CI]")
    labels = {"skills": "per-skill test", "theta": "θ test, mapped", "prior": "no test (prior)"}
    for family, arms in results.items():
        for arm, metric in arms.items():
            low, high = metric["ci95"]
            out.print(f"{family:>14}  {labels[arm]:<16} {metric['mean']:.3f} "
                      f"[{low:.3f}, {high:.3f}]")


def register(app: typer.Typer) -> None:
    """Add ``calibrate`` and ``placement simulate`` to the ``tutor`` command line."""
    app.command()(calibrate)
    placement_app = typer.Typer(help="Adaptive placement tests (CAT) over calibrated items.",
                                no_args_is_help=True)
    placement_app.command("simulate")(simulate_command)
    app.add_typer(placement_app, name="placement")
