"""Placement CAT against catsim's maximum-information CAT, side by side.

Same simulated examinees for every row (θ ~ N(0, 1), ``--examinees``, ``--seed``; written to a
file the catsim side reads), two banks: ``../shared/data/item-banks/tcals.txt`` (85 3PL items)
and a generated 2PL bank of 1,000 items drawn from catsim's own generator's distributions (a ~
N(1.2, 0.25), b ~ N(0, 1); Barrada et al. 2010), seeded. Stop rules: 5, 10, 20 and 30 items,
and SE <= 0.3 with at most 40 items. Rows per bank and rule:

* ``catsim max-info``: catsim 0.21 (``bench/catsim_ref.py`` in ``bench/.catsim-venv``, made by
  ``bench/setup_catsim.sh``): start at 0, maximum information, ML (Dodd's heuristic while all
  answers agree);
* ``ours max-info``: the textbook CAT in our engine: EAP, maximum information, no exposure
  control (everyone sees the same first item);
* ``ours placement``: what we ship: EAP, posterior-weighted information, Sympson-Hetter with a
  target of 0.9 x the bank's exposure limit (tcals 0.5, the 1,000-item bank 0.3: the issue's),
  its parameters set on other simulated examinees (seed + 1,000,003) first.

Measured: θ RMSE, bias, correlation, mean length and SE, maximum item exposure, share of unused
items, time per step (selection + estimation) p50/p99, wall and CPU (the CPU time leaves out
waits for a busy machine's cores, which dominate a shared machine's wall p99). Answers are
drawn by each tool from its own generator: the examinees are the same, their answer draws are
not.

    bash bench/setup_catsim.sh && OMP_NUM_THREADS=1 .venv/bin/python bench/placement_bench.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from benchinfo import log, machine

from engine.placement import (
    ItemBank,
    Placement,
    StopRule,
    information,
    read_bank,
    simulate,
    sympson_hetter,
    write_bank,
)

BENCH = Path(__file__).resolve().parent
TCALS = BENCH.parents[1] / "shared" / "data" / "item-banks" / "tcals.txt"
SH_SEED_OFFSET = 1_000_003
COLUMNS = ("theta_rmse", "bias", "corr", "mean_length", "mean_se", "max_exposure",
           "unused_share", "step_ms_p50", "step_ms_p99", "step_cpu_ms_p50", "step_cpu_ms_p99")


def generated_bank(n: int, seed: int) -> ItemBank:
    """catsim's ``generate_item_bank(n, '2PL')`` distributions, drawn with our seed."""
    g = np.random.default_rng(seed)
    return ItemBank.build(np.clip(g.normal(1.2, 0.25, n), 0.1, None), g.normal(0, 1, n),
                          ids=[f"g{i + 1}" for i in range(n)])


def information_bound(bank: ItemBank, thetas: np.ndarray, se: float, max_length: int) -> float:
    """Mean items to reach ``se`` (at most ``max_length``) for examinees whose θ is known, each
    given the bank's most informative items at it with no exposure limit: Fisher information
    plus the N(0, 1) prior's 1 reaching 1 / se². No CAT, which must estimate θ as it goes, can
    need fewer on average (to the accuracy of the posterior's normal approximation)."""
    info = -np.sort(-information(bank, thetas), axis=1)
    enough = 1.0 + np.cumsum(info, axis=1) >= 1.0 / se ** 2
    length = np.where(enough.any(axis=1), np.argmax(enough, axis=1) + 1, max_length)
    return float(np.minimum(length, max_length).mean())


def catsim(bank_path: Path, thetas_path: Path, rule: dict[str, Any], seed: int) -> dict:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    args = (["--length", str(rule["length"])] if "length" in rule
            else ["--stop-se", str(rule["se"]), "--max-length", str(rule["max_length"])])
    done = subprocess.run([str(BENCH / ".catsim-venv" / "bin" / "python"),
                           str(BENCH / "catsim_ref.py"), "--bank", str(bank_path), "--thetas",
                           str(thetas_path), "--seed", str(seed), *args],
                          stdout=subprocess.PIPE, text=True, check=False, env=env)
    if done.returncode != 0 or not done.stdout.strip():
        raise SystemExit(f"error: catsim_ref.py failed (exit code {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def stop_rule(rule: dict[str, Any]) -> StopRule:
    if "length" in rule:
        return StopRule(rule["length"], rule["length"])
    return StopRule(1, rule["max_length"], rule["se"])


def ours(bank: ItemBank, rule: dict[str, Any], thetas: np.ndarray, seed: int,
         limit: float | None) -> dict[str, float]:
    """Our CAT: the textbook one (``limit`` None) or the shipped one, see the module."""
    if limit is None:
        placement = Placement(bank, criterion="max-info", stop=stop_rule(rule))
    else:
        placement = Placement(bank, criterion="posterior-info", stop=stop_rule(rule))
        others = np.random.default_rng(seed + SH_SEED_OFFSET).normal(size=len(thetas))
        control = sympson_hetter(placement, 0.9 * limit, others, seed=seed + SH_SEED_OFFSET)
        placement = replace(placement, control=control)
    return simulate(placement, thetas, seed).summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examinees", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--lengths", type=int, nargs="+", default=[5, 10, 20, 30])
    parser.add_argument("--banks", nargs="+", default=["tcals", "gen1000"])
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "placement.json")
    args = parser.parse_args()
    subprocess.run(["bash", str(BENCH / "setup_catsim.sh")], check=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    thetas = np.random.default_rng(args.seed).normal(size=args.examinees)
    thetas_path = args.out.parent / "placement-thetas.txt"
    np.savetxt(thetas_path, thetas)
    banks: dict[str, tuple[Path, float]] = {}
    if "tcals" in args.banks:
        if not TCALS.is_file():
            log(f"tcals skipped: ../shared/data not found (looked for {TCALS})")
        else:
            banks["tcals"] = (TCALS, 0.5)
    if "gen1000" in args.banks:
        path = args.out.parent / "bank-2pl-1000.tsv"
        write_bank(generated_bank(1000, args.seed), path)
        banks["gen1000"] = (path, 0.3)
    rules = [{"length": k} for k in args.lengths] + [{"se": 0.3, "max_length": 40}]
    rows: list[dict[str, Any]] = []
    for name, (path, limit) in banks.items():
        bank = read_bank(path)
        for rule in rules:
            label = f"{rule['length']} items" if "length" in rule else "SE<=0.3, max 40"
            for system in ("catsim max-info", "ours max-info", "ours placement"):
                log(f"{name}, {label}: {system}")
                if system.startswith("catsim"):
                    result = catsim(path, thetas_path, rule, args.seed)
                else:
                    result = ours(bank, rule, thetas, args.seed,
                                  limit if system == "ours placement" else None)
                rows.append({"bank": name, "stop": label, "system": system, **result})
    args.out.write_text(json.dumps({"machine": machine(), "examinees": args.examinees,
                                    "seed": args.seed, "rows": rows}, indent=1))
    print(f"| bank | stop | system | {' | '.join(COLUMNS)} |")
    print("|" + "---|" * (3 + len(COLUMNS)))
    for row in rows:
        cells = [f"{row[c]:.3f}" if c in row else "-" for c in COLUMNS]
        print(f"| {row['bank']} | {row['stop']} | {row['system']} | {' | '.join(cells)} |")
    for name, (path, _) in banks.items():
        bound = information_bound(read_bank(path), thetas, 0.3, 40)
        print(f"{name}: SE <= 0.3 (max 40) needs at least {bound:.2f} items on average when θ "
              "is known (the most informative items, no exposure limit)")
    log(f"results in {args.out}")


if __name__ == "__main__":
    main()
