"""Time-aware knowledge tracing on timestamped answer logs: the ``timed`` model against PFA,
Best-LR, DAS3H, BKT with forgetting and DKT, on the same folds, in one invocation.

For each dataset (assist2017-timed, ednet-heavy): 5-fold cross-validation by learner (the same
seed, so the same folds, for every model; AUC pooled over all out-of-fold predictions, as
``tutor replay --folds 5`` reports it), and on ednet-heavy (11 learners) also the
chronological split within each learner (``--split chrono:0.7``). Then the online update of a
fitted ``timed`` model, per answer: in memory, and with the state's bytes read and written
(what the API does per answer); and that answer's cost for learners who answered 100 to 10,000
distinct items (the state keeps the ``max_items`` answered most recently). Every number of one
table comes from one run: the machine is shared and noisy. DKT runs with one thread
(``--threads``), as the busy 2-core machine needs.

Run from the repository root: ``.venv/bin/python bench/timed_bench.py [--help]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numba
import numpy as np
from benchinfo import latencies, log, machine

from engine.events import AnswerEvent, AnswerLog
from engine.tracing import ItemIndex, Tracer, make_tracer
from training.readers import read_log
from training.replay import chrono_replay, cross_validate
from training.splits import ChronoSplit

DATASETS = {"assist2017-timed": "assist2017_timed.csv", "ednet-heavy": "ednet_heavy.csv"}
MODELS = ("timed", "das3h", "best-lr", "pfa", "bkt-forgets", "dkt")
CHRONO_MODELS = ("timed", "das3h", "best-lr", "dkt")
#: the pooled AUCs measured before this work (issue 14), on the same protocol
REFERENCE = {
    "assist2017-timed": {"dkt": 0.711, "bkt-forgets": 0.666, "pfa": 0.710, "best-lr": 0.756,
                         "das3h": 0.758},
    "ednet-heavy": {"dkt": 0.637, "bkt-forgets": 0.637, "pfa": 0.714, "best-lr": 0.738,
                    "das3h": 0.738},
    "ednet-heavy chrono:0.7": {"dkt": 0.648, "das3h": 0.761},
}
TARGET = {"assist2017-timed": 0.77, "ednet-heavy": 0.75}
FOLDS, SEED = 5, 42
#: distinct items answered by the learners whose answer cost is measured
DISTINCT_ITEMS = (100, 1_000, 2_400, 10_000)


def _progress(model: str) -> Any:
    def report(done: int, total: int, what: str, metrics: Any) -> None:
        if what.startswith(("fitting", "done")):
            log(f"  {model}: {what} ({done}/{total})")
    return report


def evaluate_models(name: str, data: AnswerLog, models: tuple[str, ...],
                    split: ChronoSplit | None) -> dict[str, dict[str, Any]]:
    """Each model's pooled AUC (and log loss, times) on ``data``: K-fold by learner, or the
    chronological split within each learner."""
    rows: dict[str, dict[str, Any]] = {}
    for model in models:
        log(f"{name}: {model}" + (f" ({split})" if split else f" ({FOLDS}-fold by learner)"))
        started = time.perf_counter()
        if split is None:
            result, _ = cross_validate(model, data, FOLDS, seed=SEED, options={"seed": SEED},
                                       progress=_progress(model))
        else:
            result, _, _ = chrono_replay(model, data, split, options={"seed": SEED},
                                         progress=_progress(model))
        rows[model] = {"auc": result["auc"], "log_loss": result["log_loss"],
                       "rmse": result["rmse"], "fit_seconds": result["fit_seconds"],
                       "wall_seconds": time.perf_counter() - started,
                       "n_test": result["n_test"]}
        log(f"{name}: {model} AUC {result['auc']:.4f} in {rows[model]['wall_seconds']:.0f} s")
    return rows


def update_cost(data: AnswerLog, model: Tracer[Any], held_out: np.ndarray,
                answers: int) -> dict[str, Any]:
    """The online update of ``model`` (``timed`` fitted on the other learners), over the
    ``held_out`` learners' answers in log order: ``update`` alone (state in memory), and
    ``state_from_bytes`` + ``update`` + ``state_to_bytes`` (the state kept as bytes)."""
    events = list(data.take(held_out).events())[:answers]
    states: dict[str, Any] = {}

    def in_memory(event: Any) -> None:
        state = states.get(event.learner)
        states[event.learner] = model.update(model.new_state() if state is None else state,
                                             event)

    stored: dict[str, bytes] = {}

    def with_bytes(event: Any) -> None:
        data_ = stored.get(event.learner)
        state = model.new_state() if data_ is None else model.state_from_bytes(data_)
        stored[event.learner] = model.state_to_bytes(model.update(state, event))

    memory = latencies(events, in_memory)
    states.clear()
    as_bytes = latencies(events, with_bytes)
    sizes = [len(b) for b in stored.values()]
    return {"in_memory": memory, "with_bytes": as_bytes,
            "state_bytes_mean": float(np.mean(sizes)), "state_bytes_max": int(max(sizes))}


def distinct_items_cost(data: AnswerLog, model: Tracer[Any], sizes: Sequence[int],
                        answers: int = 300) -> dict[int, dict[str, Any]]:
    """Per size n: one learner answers n distinct items (the log's, then made-up ids on the
    same skills: unknown items are served with the mean item weight), a minute apart; then
    ``answers`` more answers, to items among them, are timed as the API handles one with a
    stored state: ``state_from_bytes`` + ``update`` + ``state_to_bytes``, and separately
    ``predict_items`` over 200 candidates (100 of them answered, 100 not)."""
    first = np.unique(data.item, return_index=True)[1]
    skills = [tuple(str(s) for s in data.skill_ids[data.skill_codes[
        data.skill_ptr[r]:data.skill_ptr[r + 1]]]) for r in first]
    ids = [str(data.item_ids[data.item[r]]) for r in first]
    start = datetime(2026, 1, 5, tzinfo=UTC)
    out: dict[int, dict[str, Any]] = {}
    for n in sizes:
        item = [ids[k] if k < len(ids) else f"made-up-{k}" for k in range(n)]
        skill = [skills[k % len(skills)] for k in range(n)]
        state = model.fold(AnswerEvent("heavy", item[k], skill[k], k % 3 > 0,
                                       start + timedelta(minutes=k)) for k in range(n))
        stored = model.state_to_bytes(state)
        later = start + timedelta(minutes=n)
        events = [AnswerEvent("heavy", item[k * 7919 % n], skill[k * 7919 % n], k % 2 > 0,
                              later + timedelta(seconds=k)) for k in range(answers)]
        step = max(n // 100, 1)
        candidates = ItemIndex([*((item[k], skill[k]) for k in range(0, n, step))][:100]
                               + [(f"unseen-{k}", skills[k % len(skills)]) for k in range(100)])
        out[n] = {"state_bytes": len(stored),
                  **_answer_cost(model, stored, state, events, candidates)}
    return out


def _answer_cost(model: Tracer[Any], stored: bytes, state: Any, events: list[AnswerEvent],
                 candidates: ItemIndex) -> dict[str, Any]:
    """Per event: ``state_from_bytes`` + ``update`` + ``state_to_bytes`` from ``stored``, and
    ``predict_items`` of ``candidates`` for ``state``."""
    def answer(event: AnswerEvent) -> None:
        model.state_to_bytes(model.update(model.state_from_bytes(stored), event))

    model.predict_items(state, candidates)  # the model's view of them, cached
    return {"with_bytes": latencies(events, answer),
            "predict_200": latencies(events, lambda _: model.predict_items(state, candidates))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "data",
                        help="Folder holding assist2017-timed/ and ednet-heavy/.")
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"Comma-separated models (default {','.join(MODELS)}).")
    parser.add_argument("--datasets", default=",".join(DATASETS),
                        help=f"Comma-separated datasets (default {','.join(DATASETS)}).")
    parser.add_argument("--no-chrono", action="store_true",
                        help="Skip the chronological split of ednet-heavy.")
    parser.add_argument("--update-answers", type=int, default=20_000,
                        help="Answers timed for the online update (default 20,000).")
    parser.add_argument("--distinct-items", default=",".join(map(str, DISTINCT_ITEMS)),
                        help="Distinct items answered by the learners whose answer cost is "
                             "measured, comma-separated (default "
                             f"{','.join(map(str, DISTINCT_ITEMS))}; empty: none).")
    parser.add_argument("--threads", type=int, default=1,
                        help="Threads for numba and PyTorch (default 1).")
    parser.add_argument("--json", type=Path, help="Also write the results to this file.")
    args = parser.parse_args()
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    numba.set_num_threads(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {"machine": machine(), "folds": FOLDS, "seed": SEED,
                               "threads": args.threads, "tables": {}, "update": {},
                               "distinct_items": {}}
    sizes = [int(n) for n in args.distinct_items.split(",") if n.strip()]
    for name in args.datasets.split(","):
        path = args.data_dir / name / DATASETS[name]
        if not path.is_file():
            raise SystemExit(f"error: {path} not found (pass --data-dir: the folder that holds "
                             f"{name}/)")
        data = read_log(path, "csv")
        results["tables"][name] = evaluate_models(name, data, models, None)
        if name == "ednet-heavy" and not args.no_chrono:
            results["tables"][f"{name} chrono:0.7"] = evaluate_models(
                name, data, tuple(m for m in models if m in CHRONO_MODELS), ChronoSplit(0.7))
        if "timed" in models:
            log(f"{name}: online update cost")
            held_out = np.isin(data.learner, np.arange(0, data.n_learners, 5))
            model: Tracer[Any] = make_tracer("timed").fit(data.take(~held_out))
            results["update"][name] = update_cost(data, model, held_out, args.update_answers)
            log(f"{name}: answer cost by distinct items answered")
            results["distinct_items"][name] = distinct_items_cost(data, model, sizes)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    print_tables(results)


def print_tables(results: dict[str, Any]) -> None:
    print(f"\nPooled AUC ({results['folds']}-fold by learner unless marked; seed "
          f"{results['seed']}; {results['machine']['nproc']} cores, {results['machine']['cpu']},"
          f" {results['machine']['date']})")
    print(f"{'data':24} {'model':12} {'AUC':>7} {'reference':>9} {'log loss':>9} "
          f"{'fit s':>8} {'wall s':>8}")
    for table, rows in results["tables"].items():
        for model, row in rows.items():
            ref = REFERENCE.get(table, {}).get(model)
            print(f"{table:24} {model:12} {row['auc']:7.4f} "
                  f"{'' if ref is None else f'{ref:.3f}':>9} {row['log_loss']:9.4f} "
                  f"{row['fit_seconds']:8.1f} {row['wall_seconds']:8.1f}")
        if "timed" in rows:
            best = max((r["auc"] for m, r in rows.items() if m != "timed"), default=-1.0)
            target = TARGET.get(table)
            verdict = "met" if rows["timed"]["auc"] > max(best, target or -1.0) else "NOT met"
            print(f"{'':24} target: timed " + (f"above {target:.2f} and " if target else "")
                  + f"above every baseline of this run (best {best:.4f}): {verdict}")
    for name, cost in results["update"].items():
        m, b = cost["in_memory"], cost["with_bytes"]
        print(f"online update, {name}, timed ({m['answers']:,} answers): in memory mean "
              f"{m['mean_us']:.1f} p50 {m['p50_us']:.1f} p99 {m['p99_us']:.1f} µs; with the "
              f"state's bytes mean {b['mean_us']:.1f} p50 {b['p50_us']:.1f} p99 "
              f"{b['p99_us']:.1f} µs (state {cost['state_bytes_mean']:,.0f} bytes mean, "
              f"{cost['state_bytes_max']:,} max); target <= 20 µs")
    for name, by_size in results["distinct_items"].items():
        for n, cost in by_size.items():
            b, p = cost["with_bytes"], cost["predict_200"]
            print(f"a learner of {n:,} distinct items, {name}: state {cost['state_bytes']:,} "
                  f"bytes; state_from_bytes + update + state_to_bytes p50 {b['p50_us']:.0f} "
                  f"p99 {b['p99_us']:.0f} µs; predict_items (200) p50 {p['p50_us']:.0f} p99 "
                  f"{p['p99_us']:.0f} µs")


if __name__ == "__main__":
    main()
