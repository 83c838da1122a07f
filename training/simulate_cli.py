"""``tutor simulate``: selection policies compared on simulated learners with a known truth.

Every policy runs on the same learners (paired) of every learner-model family, in daily
sessions; the engine's tracer (the course's own BKT, or the one a policy names) follows each
learner and the policy chooses from it, as the API does. The default set is the baselines, the
spaced policy and the engine's default policy (marked so in the table), and the oracle tutor
that reads the learners' true state (:mod:`engine.simulation.oracle`; ``--no-oracle`` leaves it
out). Reported per family and policy: exercises to course mastery and each policy's share of
the oracle's gain on them over the fixed curriculum, exercises until the course is complete
and how many of those went to skills the learner knew at the start, post-test, 7- and 30-day
retention and the tracer's diagnostic AUC, each with a 95% interval over learners and the
paired difference against a baseline policy (:mod:`engine.simulation.run`). ``--known-share``
makes every learner start knowing the first part of the course in prerequisite order (the
"known learners" study: how soon is a learner who knows the course released?).
With ``--server`` the same learners drive a running server over HTTP instead
(:mod:`training.simulate_http`): what the API serves is measured as the engine is.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from engine.catalog import Catalog
from tutor.console import fail, out, progress_bar, use_threads, writable

if TYPE_CHECKING:  # imported when a command runs: ``tutor --help`` stays quick
    from engine.simulation.run import Comparison, PopulationFactory, Progress, Schedule

#: the baselines of the default set; the engine's default policy follows them
_BASELINES = ("fixed-curriculum", "random", "lowest-mastery", "target-success", "spaced")
_FIXED, _ORACLE = "fixed-curriculum", "oracle"
_GENERATED = "generated:"


def load_course(spec: str) -> tuple[Catalog, str]:
    """(catalog, course id) for ``--course``: a course of the bundled packs, or
    ``generated:N[:SEED]`` (a generated course of N skills); ValueError listing the courses."""
    from content.packs import bundled_packs, catalog_from_packs, load_pack
    from engine.simulation.courses import GENERATED_COURSE, generated_catalog

    if spec.startswith(_GENERATED):
        size, _, seed = spec[len(_GENERATED):].partition(":")
        try:
            return generated_catalog(int(size), seed=int(seed or 0)), GENERATED_COURSE
        except ValueError as exc:
            raise ValueError(f"--course {spec!r}: write generated:N or generated:N:SEED with "
                             f"N >= 1 skills ({exc})") from None
    catalog = catalog_from_packs([load_pack(p) for p in bundled_packs().values()])
    if spec not in catalog.courses:
        raise ValueError(f"unknown course {spec!r}: give a course of the bundled packs "
                         f"({', '.join(catalog.courses)}) or generated:N (N skills)")
    return course_catalog(catalog, spec), spec


def course_catalog(catalog: Catalog, course: str) -> Catalog:
    """The course on its own: its skills, with prerequisites outside the course dropped (taken
    as known: learners start a course ready for it, else no learner model could learn a
    fractions course without multiplication, and no policy would open it), and its items."""
    skills = set(catalog.courses[course].skills)
    return Catalog.build(
        [replace(s, requires=tuple(r for r in s.requires if r in skills))
         for s in catalog.skills.values() if s.id in skills],
        [i for i in catalog.items.values() if skills.issuperset(i.skills)],
        [catalog.courses[course]])


def _cell(metric: dict[str, Any], digits: int, percent: bool = False) -> str:
    if metric["mean"] is None:
        return "-"

    def show(x: float | None, sign: str = "") -> str:
        return "?" if x is None else f"{x:{sign}.{digits}{'%' if percent else 'f'}}"

    low, high = metric["ci95"]
    text = f"{show(metric['mean'])} [{show(low)}, {show(high)}]"
    diff = metric.get("vs_baseline")
    if diff and diff["mean"] is not None:
        text += f"\n{show(diff['mean'], '+')} [{show(diff['ci95'][0], '+')}, " \
                f"{show(diff['ci95'][1], '+')}]"
    return text


def simulate(
    course: Annotated[str, typer.Option(
        help="A course of the bundled packs (e.g. math.course.whole-numbers; prerequisites "
             "outside the course are taken as known) or generated:N (a generated course of N "
             "skills; generated:N:SEED for another graph).")],
    learners: Annotated[int, typer.Option(help="Simulated learners per learner model.")] = 1000,
    days: Annotated[int, typer.Option(help="Days of daily sessions.")] = 30,
    seed: Annotated[int, typer.Option(help="Seed of the learners and their answers: the same "
                                           "seed gives the same numbers.")] = 0,
    per_session: Annotated[int, typer.Option(help="Exercises per daily session.")] = 10,
    learner_model: Annotated[list[str] | None, typer.Option(
        help="Learner-model family (repeat for several; default: every family).")] = None,
    policy: Annotated[list[str] | None, typer.Option(
        help="Policy NAME or NAME:option=value,... (repeat; default: fixed-curriculum, "
             "random, lowest-mastery, target-success, spaced and the default policy).")] = None,
    oracle: Annotated[bool, typer.Option(
        "--oracle/--no-oracle", help="Also run the oracle tutor, which reads the learners' "
                                     "true state (the ceiling; not with --server).")] = True,
    known_share: Annotated[float, typer.Option(
        help="Every learner starts knowing this share of the course (its first skills in "
             "prerequisite order; 1: all of it); 0: the learner models' own prior "
             "knowledge. Not for fitted-bkt.")] = 0.0,
    baseline: Annotated[str | None, typer.Option(
        help="The policy paired differences are taken against (default: the first).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    plot: Annotated[Path | None, typer.Option(
        help="Write learning and retention curves to this picture (.png, .svg, .pdf).")] = None,
    threads: Annotated[int | None, typer.Option(help="Threads for numerical work.")] = None,
    server: Annotated[str | None, typer.Option(
        help="Drive a running server instead (its URL, e.g. http://127.0.0.1:8000): the "
             "learners answer whatever it serves the tenant (its policy and target), in "
             "simulated time ending a day ago. Its tenant must hold the course.")] = None,
    api_key: Annotated[str | None, typer.Option(
        envvar="TUTOR_API_KEY", help="The tenant's API key, for --server.")] = None,
    learner_prefix: Annotated[str | None, typer.Option(
        help="With --server: learner ids PREFIX-MODEL-I (default sim<seed>); ids that "
             "already have answers on the server are refused.")] = None,
    connections: Annotated[int, typer.Option(
        help="With --server: requests at once (each for another learner).")] = 8,
) -> None:
    """Compare selection policies on simulated learners (paired, with 95% intervals).

    Each cell of the table is the mean over learners with its 95% interval, and below it the
    paired difference against the baseline policy. Exercises to mastery count the whole budget
    (days x per-session) for learners who never master the course, and so do exercises to
    complete (until the tutor first serves nothing, as the API does once the course is
    complete: every course skill learned at the policy's mastery threshold and no review due)
    for learners never released; "on known skills" counts those of
    the latter spent on items whose skills the learner knew at the start. The share of the
    oracle's gain is (fixed - policy) / (fixed - oracle) on exercises to mastery, with a
    bootstrap interval. With --server the same learners (same seed, same draws) drive a
    running server over HTTP instead, under the policy it serves (reported as "served").
    """
    import engine.simulation  # noqa: F401  (registers the learner-model families)
    from engine.selection.registry import DEFAULT_POLICY, make_policy, parse_policy
    from engine.simulation.base import FAMILIES
    from engine.simulation.oracle import OracleTutor
    from engine.simulation.run import Schedule, compare

    use_threads(threads)
    if learners < 2:
        raise fail(f"--learners must be at least 2 (intervals need two), got {learners}")
    if plot is not None:
        if plot.suffix.lower() not in (".png", ".svg", ".pdf"):
            raise fail(f"--plot must end in .png, .svg or .pdf, got {plot.name!r}")
        writable(plot, "--plot")
    if server is None and (api_key, learner_prefix) != (None, None):
        raise fail("--api-key and --learner-prefix go with --server URL")
    if server is not None:
        if policy or baseline or known_share:
            raise fail("--policy, --baseline and --known-share go with in-process runs; a "
                       "--server serves its own policy (its tenant's, or an experiment's arm) "
                       "to learner models' own learners")
        if not api_key:
            raise fail("--server needs the tenant's key: --api-key KEY (or TUTOR_API_KEY)")
        if connections < 1:
            raise fail(f"--connections must be at least 1, got {connections}")
        oracle = False
    families = list(learner_model or sorted(FAMILIES))
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise fail(f"unknown learner model {unknown[0]!r} (learner models: "
                   f"{', '.join(sorted(FAMILIES))})")
    try:
        schedule = Schedule(days=days, per_session=per_session)
        catalog, course_id = load_course(course)
        policies = {}
        for spec in () if server else policy or dict.fromkeys((*_BASELINES, DEFAULT_POLICY)):
            name, options = parse_policy(spec)
            policies[spec] = make_policy(name, **options)
        if baseline is not None and baseline not in policies:
            raise ValueError(f"--baseline {baseline!r} is not among the policies "
                             f"({', '.join(policies)})")
        known, skipped, learners_of = _known_learners(catalog, course_id, known_share,
                                                      families, learner_model is not None)
    except ValueError as exc:
        raise fail(str(exc)) from None
    families = [f for f in families if f not in skipped]

    # a policy that names its tracer (``spaced``: bkt-memory) runs with it, on the same content
    models = {label: getattr(p, "tracer_model", None) for label, p in policies.items()}
    tracers = {label: functools.partial(catalog.tracer, model)
               for label, model in models.items() if model}
    started = time.perf_counter()
    with progress_bar() as report:
        total = len(families) * max(len(policies) + oracle, 1) * days
        done = [0]

        def progress(day: int, _days: int, what: str, metrics: Any) -> None:
            done[0] += 1
            report(done[0], total, what, metrics)

        if server is not None:
            assert api_key is not None
            result = _served(server, api_key, families, catalog, course_id, learners=learners,
                             seed=seed, schedule=schedule, connections=connections,
                             prefix=learner_prefix or f"sim{seed}", progress=progress)
        else:
            result = compare(families, catalog, course_id, policies, n=learners, seed=seed,
                             schedule=schedule, tracer=catalog.tracer, baseline=baseline,
                             progress=progress, tracers=tracers,
                             tutors={_ORACLE: OracleTutor} if oracle else None,
                             population=learners_of,
                             gain=(_FIXED, _ORACLE) if oracle and _FIXED in policies
                             else None)
    seconds = time.perf_counter() - started
    summary = result.summary()
    skills = len(catalog.courses[course_id].skills)
    for per_policy in summary.values():
        for metrics in per_policy.values():
            metrics["exercises_to_complete_per_skill"] = _per(metrics["exercises_to_complete"],
                                                              skills)
    if plot is not None:
        from training.simulate_plots import plot_comparison

        plot_comparison(result, plot, title=f"{course}: {learners} simulated learners per "
                                            f"model, {days} days x {per_session} exercises, "
                                            f"seed {seed}")
    setup = {"course": course, "course_skills": skills, "learners": learners, "days": days,
             "per_session": per_session, "seed": seed, "baseline": result.baseline,
             "default_policy": DEFAULT_POLICY, "oracle": oracle, "known_share": known_share,
             "known_skills": len(known), "learner_models": families,
             "skipped_learner_models": skipped}
    if as_json:
        _print_json(result, summary, setup, server, seconds)
    else:
        _print_tables(summary, setup, seconds, plot)


def _known_learners(catalog: Catalog, course: str, share: float, families: list[str],
                    named: bool) -> tuple[Any, dict[str, str], PopulationFactory]:
    """For ``--known-share``: the known skills, the families left out (family -> why: only
    named ones are refused) and what makes each run's learners. Learners who know part of the
    course come from :mod:`engine.simulation.placement_value` (the placement study's)."""
    from engine.simulation.base import Population, make_population
    from engine.simulation.placement_value import (
        PRIOR_KNOWLEDGE,
        known_skills,
        population_knowing,
    )

    if not share:
        return (), {}, make_population
    known = known_skills(catalog, course, share)  # checks the share's range
    skipped = {f: "its learners cannot be made to know given skills (no skill-level state "
                  f"to set; learner models that can: {', '.join(sorted(PRIOR_KNOWLEDGE))})"
               for f in families if f not in PRIOR_KNOWLEDGE}
    if named and skipped:
        raise ValueError(f"--known-share and --learner-model {next(iter(skipped))}: "
                         f"{next(iter(skipped.values()))}")
    if len(skipped) == len(families):
        raise ValueError("--known-share: none of the learner models can start knowing skills "
                         f"(those that can: {', '.join(sorted(PRIOR_KNOWLEDGE))})")

    def knowing(family: str, catalog: Catalog, n: int, seed: int) -> Population:
        return population_knowing(family, catalog, known, n, seed)

    return known, skipped, knowing


def _per(metric: dict[str, Any], skills: int) -> dict[str, Any]:
    """A mean with its interval, per course skill."""
    return {"mean": None if metric["mean"] is None else metric["mean"] / skills,
            "ci95": [None if x is None else x / skills for x in metric["ci95"]]}


def _print_json(result: Comparison, summary: dict[str, Any], setup: dict[str, Any],
                server: str | None, seconds: float) -> None:
    from engine.simulation.run import RETENTION_DAYS

    curves = {family: {name: {"mastery_by_day": run.mastery_curve.round(6).tolist(),
                              "retention_by_day": dict(zip(
                                  map(str, RETENTION_DAYS),
                                  run.retention_curve.round(6).tolist(), strict=True))}
                       for name, run in runs.items()}
              for family, runs in result.runs.items()}
    print(json.dumps({**setup, "policies": list(next(iter(summary.values()))),
                      **({"server": server} if server else {}), "seconds": round(seconds, 2),
                      "results": summary, "curves": curves}))


def _print_tables(summary: dict[str, Any], setup: dict[str, Any], seconds: float,
                  plot: Path | None) -> None:
    known = f", learners knowing {setup['known_skills']} of {setup['course_skills']} skills" \
        if setup["known_share"] else ""
    for family, per_policy in summary.items():
        table = Table(title=f"{family}: {setup['learners']} learners, {setup['course']}"
                            f"{known}, {setup['days']} days x {setup['per_session']} "
                            f"exercises (second line: paired difference vs "
                            f"{setup['baseline']})")
        table.add_column("policy")
        for column in ("exercises to mastery", "share of oracle gain", "mastered",
                       "exercises to complete (per skill)", "on known skills", "post-test",
                       "retention 7 d", "retention 30 d", "diagnostic AUC"):
            table.add_column(column, justify="right")
        for name, m in per_policy.items():
            gain = m.get("share_of_oracle_gain")
            per_skill = m["exercises_to_complete_per_skill"]["mean"]
            table.add_row(
                f"{name} (default)" if name == setup["default_policy"] else name,
                _cell(m["exercises_to_mastery"], 1), "-" if gain is None else _cell(gain, 0, True),
                f"{m['mastered_share']['mean']:.0%}",
                _cell(m["exercises_to_complete"], 1) + f"\n({per_skill:.2f})",
                _cell(m["exercises_on_known"], 1), _cell(m["post_test"], 3),
                _cell(m["retention_7d"], 3), _cell(m["retention_30d"], 3),
                _cell(m["diagnostic_auc"], 3))
        out.print(table)
    skipped = "".join(f"; {f} left out: {why}" for f, why in
                      setup["skipped_learner_models"].items())
    out.print(f"{len(summary)} learner models x {len(next(iter(summary.values())))} policies "
              f"in {seconds:.1f} s" + (f"; curves written to {plot}" if plot else "") + skipped)


def _served(url: str, api_key: str, families: list[str], catalog: Catalog, course: str, *,
            learners: int, seed: int, schedule: Schedule, connections: int, prefix: str,
            progress: Progress) -> Comparison:
    """The served runs of ``--server`` (:func:`training.simulate_http.compare_served`); what
    the server refuses becomes an error that says what to fix."""
    from training.simulate_http import ServerError, compare_served

    try:
        return compare_served(url, api_key, families, catalog, course, n=learners, seed=seed,
                              schedule=schedule, prefix=prefix, connections=connections,
                              progress=progress)
    except (ServerError, ValueError) as exc:
        raise fail(f"--server {url}: {exc}") from None


def register(app: typer.Typer) -> None:
    """Add ``tutor simulate`` to the command line."""
    app.command()(simulate)
