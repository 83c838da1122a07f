"""Benchmark our BKT against pyBKT 1.4.3 (its C++ build) on assist2009-dkt, in one invocation.

Both sides run in the same invocation, one after the other, because the machine is shared and
noisy: a speed ratio is only meaningful when both of its numbers come from the same run.
pyBKT needs numpy < 2 and we need numpy >= 2, so pyBKT runs in its own venv
(``bench/setup_pybkt.sh``) through ``bench/pybkt_ref.py``; this script feeds it CSVs written from
our own reader's log, so both fit the very same answers with the same real learner ids.

Run from the repository root: ``.venv/bin/python bench/bkt_vs_pybkt.py [--help]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pandas as pd
from benchinfo import best_rate, latencies, log, machine

from engine.events import AnswerEvent, AnswerLog
from engine.tracing import Tracer, make_tracer
from training.metrics import scores
from training.readers import read_log

BENCH = Path(__file__).resolve().parent
DATASET = "assist2009-dkt"
SPLITS = {"train": "builder_train.csv", "test": "builder_test.csv"}
VARIANTS = {"bkt": "bkt", "bkt_forgets": "bkt-forgets"}  # result key -> registry model name
_REPLAY_RUNS = 3
_WARMUP_ANSWERS = 5_000


# ---------------------------------------------------------------------------------- inputs
def read_splits(data_dir: Path) -> dict[str, AnswerLog]:
    """Both splits with our reader; exits with where it looked when the data is absent."""
    folder = data_dir / DATASET
    missing = [folder / name for name in SPLITS.values() if not (folder / name).is_file()]
    if missing:
        raise SystemExit(f"error: benchmark data not found; looked for "
                         f"{', '.join(str(p) for p in missing)} (pass --data-dir: the folder that "
                         f"holds {DATASET}/)")
    return {split: read_log(folder / name, "dkt3") for split, name in SPLITS.items()}


def write_pybkt_csv(answers: AnswerLog, path: Path) -> None:
    """The log as pyBKT's CSV, with the real learner ids as ``user_id``.

    ``order_id`` is the row order, which pyBKT sorts by before grouping by user, so each learner's
    answers stay in their original order. Our 3-line reader gives one skill per answer.
    """
    if not np.array_equal(answers.skill_ptr, np.arange(len(answers) + 1)):
        raise ValueError("pyBKT CSVs hold one skill per answer")
    pd.DataFrame({
        "order_id": np.arange(len(answers)),
        "user_id": answers.learner_ids[answers.learner],
        "skill_name": answers.skill_ids[answers.skill_codes],
        "correct": answers.correct,
    }).to_csv(path, index=False)


# ---------------------------------------------------------------------------------- pyBKT
def run_pybkt(csvs: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    """Build the reference venv if needed, run ``pybkt_ref.py`` in it and parse its JSON."""
    log("pyBKT: checking the reference venv (bench/setup_pybkt.sh)")
    subprocess.run(["bash", str(BENCH / "setup_pybkt.sh")], check=True)
    command = [str(BENCH / ".pybkt-venv" / "bin" / "python"), str(BENCH / "pybkt_ref.py"),
               str(csvs["train"]), str(csvs["test"]), "--num-fits", str(args.num_fits),
               "--seed", str(args.seed), "--repeats", str(args.repeats),
               "--update-answers", str(args.update_answers)]
    log("pyBKT: fitting and timing (5-25 s per fit)")
    # pyBKT's OpenMP threads and OpenBLAS's own pool oversubscribe the cores: after a fit, each
    # Roster.update_state can wait for a scheduler tick (ms instead of ~0.1 ms). One BLAS thread
    # removes that and leaves pyBKT's fit time as it is (the E-step is the OpenMP C++ code).
    env = {**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False, env=env)
    if done.returncode:
        raise SystemExit(f"error: pybkt_ref.py failed with exit code {done.returncode}")
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise SystemExit("error: pybkt_ref.py printed no result")
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------------- ours
def warm_up(train: AnswerLog, num_fits: int, seed: int) -> float:
    """Seconds of the first calls on a small slice: numba compiles (or loads its cache) here, so
    that this one-off cost is reported apart and kept out of every timed run."""
    head = train.take(np.arange(min(_WARMUP_ANSWERS, len(train))))
    t0 = time.perf_counter()
    for name in VARIANTS.values():
        model = make_tracer(name, num_fits=num_fits, seed=seed).fit(head)
        model.predict_log(head)
        state = model.update(model.new_state(), head[0])
        model.state_from_bytes(model.state_to_bytes(state))
    return time.perf_counter() - t0


def time_fits(train: AnswerLog, test: AnswerLog, name: str,
              args: argparse.Namespace) -> tuple[Tracer[Any], dict[str, Any]]:
    """``repeats`` fresh fits (same seed, so the same fit each time), then test-split scores."""
    fit_s = []
    model = None
    for run in range(args.repeats):
        model = make_tracer(name, num_fits=args.num_fits, seed=args.seed)
        t0 = time.perf_counter()
        model.fit(train)
        fit_s.append(time.perf_counter() - t0)
        log(f"ours: fit {name} run {run + 1}/{args.repeats}: {fit_s[-1]:.2f} s")
    assert model is not None
    metrics = scores(test.correct, model.predict_log(test))
    return model, {"fit_s": fit_s, **{k: metrics[k] for k in ("auc", "rmse", "accuracy")}}


def time_online(model: Tracer[Any], test: AnswerLog) -> dict[str, Any]:
    """Online update per test answer, with and without the state's bytes round trip.

    "With" is what a server does: read the learner's state from a store, update it, write it back
    (here an in-process dict of bytes, so the figure is the engine's cost, not a database's).
    Answers on skills the model was not fitted on are left out: ``update`` rejects them, as
    pyBKT's Roster does.
    """
    fitted = set(model.skills)
    events = [e for e in test.events() if fitted.issuperset(e.skills)]

    store: dict[str, bytes] = {}

    def with_bytes(event: AnswerEvent) -> None:
        raw = store.get(event.learner)
        state = model.new_state() if raw is None else model.state_from_bytes(raw)
        store[event.learner] = model.state_to_bytes(model.update(state, event))

    states: dict[str, np.ndarray] = {}

    def in_memory(event: AnswerEvent) -> None:
        state = states.get(event.learner)
        states[event.learner] = model.update(model.new_state() if state is None else state, event)

    return {"unfitted_skill_answers_in_test": len(test) - len(events),
            "store_bytes": latencies(events, with_bytes),
            "in_memory": latencies(events, in_memory)}


def time_replay(model: Tracer[Any], answers: AnswerLog) -> dict[str, float]:
    """Best-of-three answers per second of ``predict_log`` (batch replay of a whole log)."""
    return best_rate(lambda: model.predict_log(answers), len(answers), _REPLAY_RUNS)


def run_ours(logs: dict[str, AnswerLog], args: argparse.Namespace) -> dict[str, Any]:
    """All our measurements, as one JSON-ready dict."""
    result: dict[str, Any] = {"numba_threads": numba.get_num_threads()}
    log("ours: warming up the numba JIT")
    result["jit_warmup_s"] = warm_up(logs["train"], args.num_fits, args.seed)
    models = {}
    for key, name in VARIANTS.items():
        models[key], result[key] = time_fits(logs["train"], logs["test"], name, args)
        log(f"ours: {key}: AUC {result[key]['auc']:.4f}")
    log("ours: online updates")
    result["online_update"] = time_online(models["bkt"], logs["test"])
    log("ours: batch replay")
    result["replay"] = {split: time_replay(models["bkt"], logs[split]) for split in SPLITS}
    return result


# ---------------------------------------------------------------------------------- report
def table(ours: dict[str, Any], ref: dict[str, Any] | None) -> str:
    """Markdown table, ours beside pyBKT; the last column is how many times faster ours is
    (pyBKT's time over ours, or our throughput over pyBKT's)."""
    lines = ["| measure | ours | pyBKT 1.4.3 (C++) | ours faster by |", "|---|---|---|---|"]

    def row(name: str, mine: str, theirs: str | None = None, speedup: float | None = None) -> None:
        ratio = "" if speedup is None else f"{speedup:.1f}x"
        lines.append(f"| {name} | {mine} | {theirs or '-'} | {ratio} |")

    def fit_cell(fit_s: list[float]) -> str:
        return f"{statistics.median(fit_s):.2f} (min {min(fit_s):.2f})"

    def latency_cell(lat: dict[str, Any]) -> str:
        return (f"{lat['mean_us']:.1f} (p50 {lat['p50_us']:.1f}, p99 {lat['p99_us']:.1f}; "
                f"n={lat['answers']:,})")

    for key, label in (("bkt", "BKT"), ("bkt_forgets", "BKT+forgets")):
        mine = ours[key]
        theirs = ref[key] if ref else None
        row(f"{label} fit s, median (min)", fit_cell(mine["fit_s"]),
            fit_cell(theirs["fit_s"]) if theirs else None,
            statistics.median(theirs["fit_s"]) / statistics.median(mine["fit_s"]) if theirs
            else None)
        for metric, name in (("auc", "AUC"), ("rmse", "RMSE"), ("accuracy", "accuracy")):
            row(f"{label} test {name}", f"{mine[metric]:.4f}",
                f"{theirs[metric]:.4f}" if theirs else None)

    roster = ref["roster_update"] if ref else None
    for key, label in (("store_bytes", "state read+write"), ("in_memory", "in-memory state")):
        mine = ours["online_update"][key]
        row(f"online update µs, mean (ours: {label}; pyBKT: Roster.update_state)",
            latency_cell(mine), latency_cell(roster) if roster else None,
            roster["mean_us"] / mine["mean_us"] if roster else None)
    for split in SPLITS:
        mine = ours["replay"][split]
        theirs = ref["replay"][split] if ref else None
        row(f"batch replay {split}, answers/s (best of {_REPLAY_RUNS})",
            f"{mine['answers_per_s']:,.0f}",
            f"{theirs['answers_per_s']:,.0f}" if theirs else None,
            mine["answers_per_s"] / theirs["answers_per_s"] if theirs else None)
    row("JIT first-call compile/cache load s", f"{ours['jit_warmup_s']:.2f}")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path,
                        default=BENCH.parent.parent / "shared" / "data",
                        help=f"folder holding {DATASET}/ (default: ../shared/data from the repo)")
    parser.add_argument("--num-fits", type=int, default=5, help="EM restarts per skill")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=3, help="timed fits per model and side")
    parser.add_argument("--update-answers", type=int, default=20_000,
                        help="test answers timed through pyBKT's Roster (ours: all of them)")
    parser.add_argument("--skip-pybkt", action="store_true",
                        help="measure ours only (no reference venv needed)")
    parser.add_argument("--json-out", type=Path, default=BENCH / "results" / "bkt_vs_pybkt.json")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    log(f"reading {args.data_dir / DATASET}")
    logs = read_splits(args.data_dir)
    ref = None
    if not args.skip_pybkt:
        with tempfile.TemporaryDirectory(prefix="bkt-vs-pybkt-") as tmp:
            csvs = {split: Path(tmp) / f"{split}.csv" for split in SPLITS}
            for split, path in csvs.items():
                write_pybkt_csv(logs[split], path)
            ref = run_pybkt(csvs, args)
    ours = run_ours(logs, args)

    info = machine()
    print(f"BKT vs pyBKT on {DATASET} (train {len(logs['train']):,} answers, test "
          f"{len(logs['test']):,}); num_fits={args.num_fits}, seed={args.seed}, "
          f"repeats={args.repeats}\n")
    print(table(ours, ref))
    print(f"\nmachine: {info['nproc']} CPUs, {info['cpu']}; numba threads "
          f"{ours['numba_threads']}; {info['date']}")

    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps({
        "dataset": DATASET, "machine": info,
        "options": {"num_fits": args.num_fits, "seed": args.seed, "repeats": args.repeats,
                    "update_answers": args.update_answers},
        "ours": ours, "pybkt": ref,
    }, indent=2) + "\n")
    log(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()
