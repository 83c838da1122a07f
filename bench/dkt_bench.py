"""Benchmark DKT on the reference splits beside published results and beside our BKT.

Per dataset, in one invocation: train DKT on the training split (CPU, early stopping on 10% of
the training learners held out), score the test split (AUC, RMSE, accuracy), fit and score our
BKT on the same split, time batch replay of the test split, and time one online step per test
answer (state bytes read, one LSTM step, bytes written, as the server does).

Run from the repository root: ``.venv/bin/python bench/dkt_bench.py [--help]``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from benchinfo import best_rate, latencies, log, machine

from engine.events import AnswerEvent, AnswerLog
from engine.tracing import Tracer, make_tracer
from training.readers import read_log
from training.replay import fit_and_score, score

BENCH = Path(__file__).resolve().parent
_REPLAY_RUNS = 5  # best of: the machine is shared, and a neighbour only ever slows a run


@dataclass(frozen=True)
class Dataset:
    """A reference split, its published AUCs and the issue's target."""

    folder: str
    train: str
    test: str
    target_auc: float
    published: dict[str, float]


DATASETS = {
    "statics2011": Dataset(
        "statics2011", "STATICS_train.csv", "STATICS_test.csv", 0.830,
        {"DKT (DKVMN paper)": 0.802, "DKVMN": 0.828, "DKT (independent rerun)": 0.829}),
    "assist2015": Dataset(
        "assist2015", "assist2015_train.csv", "assist2015_test.csv", 0.735,
        {"DKT (DKVMN paper)": 0.725, "DKVMN": 0.727, "DKT (rerun)": 0.729}),
    "assist2009-dkt": Dataset(
        "assist2009-dkt", "builder_train.csv", "builder_test.csv", 0.84,
        {"DKT paper": 0.86, "BKT (DKT paper)": 0.67, "BKT+forgetting (Khajah)": 0.83}),
    "synthetic5": Dataset(
        "synthetic5", "naive_c5_q50_s4000_v0_train.csv", "naive_c5_q50_s4000_v0_test.csv", 0.80,
        {"DKT paper": 0.80, "BKT (DKT paper)": 0.54}),
}


def read_split(data_dir: Path, ds: Dataset) -> tuple[AnswerLog, AnswerLog]:
    paths = [data_dir / ds.folder / name for name in (ds.train, ds.test)]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"error: benchmark data not found: {', '.join(map(str, missing))} "
                         "(pass --data-dir: the folder that holds the datasets)")
    return read_log(paths[0], "dkt3"), read_log(paths[1], "dkt3")


def time_online(model: Tracer[Any], test: AnswerLog, n: int) -> dict[str, Any]:
    """One online step per test answer (the first ``n``, in log order) as a server runs it:
    read the learner's state bytes, update with one LSTM step, write the bytes back."""
    known = set(model.skills)
    events = [e for e in test.events() if known.issuperset(e.skills)][:n]
    store: dict[str, bytes] = {}

    def step(event: AnswerEvent) -> None:
        raw = store.get(event.learner)
        state = model.new_state() if raw is None else model.state_from_bytes(raw)
        store[event.learner] = model.state_to_bytes(model.update(state, event))

    latencies(events[:1000], step)  # warm caches and allocators, untimed
    store.clear()
    return latencies(events, step)


def time_replay(model: Tracer[Any], answers: AnswerLog) -> dict[str, float]:
    """Best-of-five answers per second of ``predict_log`` (batch replay of a whole log)."""
    return best_rate(lambda: model.predict_log(answers), len(answers), _REPLAY_RUNS)


def run_dataset(name: str, ds: Dataset, args: argparse.Namespace) -> dict[str, Any]:
    train, test = read_split(args.data_dir, ds)
    options = {"seed": args.seed, **({"epochs": args.epochs} if args.epochs else {})}
    log(f"{name}: training DKT {options} on {len(train):,} answers")
    model = make_tracer("dkt", **options)
    start = time.perf_counter()
    model.fit(train, progress=_every_epoch(name))
    train_s = time.perf_counter() - start
    result, _ = score(model, test)
    log(f"{name}: DKT test AUC {result['auc']:.4f} ({train_s:.0f} s training)")
    bkt, _ = fit_and_score("bkt", train, test, options={"seed": args.seed})
    log(f"{name}: BKT test AUC {bkt['auc']:.4f}")
    return {
        "dataset": name, "target_auc": ds.target_auc, "published": ds.published,
        "options": model.get_options(), "n_train": len(train), "n_test": len(test),
        "dkt": {k: result[k] for k in ("auc", "rmse", "accuracy", "log_loss")},
        "bkt": {k: bkt[k] for k in ("auc", "rmse", "accuracy", "log_loss")},
        "train_s": train_s, "training": model.training_,
        "replay": time_replay(model, test),
        "online_step": time_online(model, test, args.online_answers),
    }


def _every_epoch(name: str) -> Any:
    def progress(done: int, total: int, what: str, metrics: dict[str, float]) -> None:
        if "loss" not in metrics:  # the call at the end of an epoch carries only its AUC
            log(f"{name}: {what} valid AUC {metrics.get('valid_auc', float('nan')):.4f}")
    return progress


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| dataset | DKT AUC (target) | RMSE | accuracy | our BKT AUC | published AUC | "
             "train s (epochs) | replay answers/s | online step µs p50 / p99 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        dkt, online = r["dkt"], r["online_step"]
        met = "met" if dkt["auc"] >= r["target_auc"] else "NOT met"
        published = "; ".join(f"{k} {v:.3f}" for k, v in r["published"].items())
        lines.append(
            f"| {r['dataset']} | {dkt['auc']:.4f} (>= {r['target_auc']:.3f}, {met}) | "
            f"{dkt['rmse']:.4f} | {dkt['accuracy']:.4f} | {r['bkt']['auc']:.4f} | {published} | "
            f"{r['train_s']:.0f} ({r['training']['epochs_run']}, best "
            f"{r['training']['best_epoch']}) | {r['replay']['answers_per_s']:,.0f} | "
            f"{online['p50_us']:.1f} / {online['p99_us']:.1f} |")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=BENCH.parent.parent / "shared" / "data",
                        help="folder holding the datasets (default: ../shared/data)")
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--epochs", type=int, default=None,
                        help="most epochs (default: the model's; for quick smoke runs)")
    parser.add_argument("--online-answers", type=int, default=20_000,
                        help="test answers timed one online step at a time")
    parser.add_argument("--json-out", type=Path, default=BENCH / "results" / "dkt.json")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    results = [run_dataset(name, DATASETS[name], args) for name in args.datasets]
    info = {**machine(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    print(f"DKT on the reference splits (seed {args.seed}, CPU)\n")
    print(table(results))
    print(f"\nmachine: {info['nproc']} CPUs, {info['cpu']}; torch {info['torch']} with "
          f"{info['torch_threads']} threads; {info['date']}")
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(
        {"machine": info, "datasets": {k: asdict(DATASETS[k]) for k in args.datasets},
         "results": results}, indent=2, default=float) + "\n")
    log(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()
