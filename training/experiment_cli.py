"""``tutor experiment simulate-aa``: the research side of the ``experiment`` command group
(mounted by :mod:`tutor.cli`; the service side, ``tutor experiment report``, is in
:mod:`api.cli`).

It measures what the API's experiment intervals promise: that looking at an experiment every
day does not inflate its false-positive rate (:mod:`engine.experiments.aa`), and shows, from the
same runs, how much a fixed-sample test looked at daily does.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer

from engine.experiments.aa import AaResult, simulate_aa
from tutor.console import fail, out, progress_bar

#: the validity target of issue 13: a false-positive rate of daily looks at most this
TARGET_FPR = 0.05


def simulate_aa_command(
    runs: Annotated[int, typer.Option(min=1, help="A/A experiments to simulate.")] = 1000,
    days: Annotated[int, typer.Option(min=1, help="Days each runs, looked at once a day.")]
    = 30,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same numbers.")] = 0,
    learners_per_day: Annotated[float, typer.Option(
        min=0.1, help="Learners arriving a day, on average (Poisson).")] = 40.0,
    alpha: Annotated[float, typer.Option(
        help="Error rate of the intervals (1 - confidence), between 0 and 1.")] = 0.05,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
    = False,
) -> None:
    """Simulate A/A experiments (two arms, one policy) looked at daily; report the share of
    runs where any look declared a difference (`false_positive_rate`, with its exact 95%
    interval), for the always-valid intervals the API reports and, for comparison, for a
    fixed-sample test looked at daily and looked at once."""
    started = time.perf_counter()
    with progress_bar() as report:
        try:
            result = simulate_aa(runs, days, seed, learners_per_day, alpha,
                                 on_run=lambda i: report(i + 1, runs, "A/A runs", {}))
        except ValueError as exc:
            raise fail(str(exc)) from None
    seconds = time.perf_counter() - started
    summary = _summary(result)
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    rows = (("always-valid interval, daily looks", result.sequential),
            ("fixed-sample test, daily looks", result.naive_daily),
            ("fixed-sample test, last day only", result.naive_final))
    out.print(f"{runs} A/A runs x {days} daily looks, {result.mean_learners:.0f} learners per "
              f"run on average (seed {seed}, alpha {alpha}), {seconds:.1f} s")
    out.print(f"{'method':<38} {'false positives':>15} {'rate':>7}  95% interval")
    for name, rate in rows:
        low, high = rate.ci95
        out.print(f"{name:<38} {rate.events:>15} {rate.value:>7.3f}  [{low:.3f}, {high:.3f}]")
    verdict = "met" if summary["target_met"] else "NOT met"
    out.print(f"target: false-positive rate <= {TARGET_FPR} with daily looks: {verdict}")


def _summary(result: AaResult) -> dict[str, object]:
    """The JSON of ``result``: only numbers the seed determines (no timings)."""
    sequential = result.sequential.to_json()
    return {"runs": result.runs, "days": result.days, "seed": result.seed,
            "learners_per_day": result.learners_per_day, "alpha": result.alpha,
            "planned_n": result.planned_n, "mean_learners": round(result.mean_learners, 3),
            "false_positive_rate": sequential["rate"],
            "false_positive_rate_ci95": sequential["ci95"],
            "target": TARGET_FPR, "target_met": result.sequential.value <= TARGET_FPR,
            "methods": {"always_valid_daily": sequential,
                        "fixed_sample_daily": result.naive_daily.to_json(),
                        "fixed_sample_last_day": result.naive_final.to_json()}}


def register(app: typer.Typer) -> None:
    """Add the research commands to the ``tutor experiment`` group."""
    app.command("simulate-aa")(simulate_aa_command)
