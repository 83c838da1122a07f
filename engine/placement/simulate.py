"""Simulated examinees taking a placement test: accuracy, exposure and speed, and the
Sympson-Hetter parameters that hold exposure to a target.

Examinees with known abilities answer by the bank's own model (a Bernoulli draw of P(correct)),
so the estimates can be scored against the truth. Examinee ``i`` of a run seeded ``s`` uses the
session seed and answer stream derived from ``(s, i)``: runs are reproducible, and two
configurations run with the same seed face the same examinees.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from engine.placement.irt import probability
from engine.placement.session import Placement

__all__ = ["SimulationResult", "simulate", "sympson_hetter"]

#: called with (examinees done, examinees in all)
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """What a simulated administration measured (per examinee arrays, and summaries)."""

    true_theta: np.ndarray
    theta: np.ndarray
    se: np.ndarray
    lengths: np.ndarray
    exposure: np.ndarray      # share of examinees given each item
    selected: np.ndarray      # share for whom each item was selected (given or set aside)
    step_ms: np.ndarray       # wall time of each step: selection + estimation
    step_cpu_ms: np.ndarray   # CPU time of the same steps (not counting waits for a busy CPU)

    def summary(self) -> dict[str, float]:
        """The figures ``tutor placement simulate --json`` prints."""
        error = self.theta - self.true_theta
        return {
            "theta_rmse": float(np.sqrt(np.mean(error ** 2))),
            "bias": float(np.mean(error)),
            "corr": float(np.corrcoef(self.theta, self.true_theta)[0, 1]),
            "mean_length": float(np.mean(self.lengths)),
            "mean_se": float(np.mean(self.se)),
            "max_exposure": float(self.exposure.max()),
            "unused_share": float(np.mean(self.exposure == 0)),
            "step_ms_p50": float(np.percentile(self.step_ms, 50)),
            "step_ms_p99": float(np.percentile(self.step_ms, 99)),
            "step_cpu_ms_p50": float(np.percentile(self.step_cpu_ms, 50)),
            "step_cpu_ms_p99": float(np.percentile(self.step_cpu_ms, 99)),
        }


def examinee_seeds(seed: int, n: int) -> list[np.random.SeedSequence]:
    """One independent seed sequence per examinee, derived from ``seed``."""
    return np.random.SeedSequence(seed).spawn(n)


def simulate(placement: Placement, thetas: np.ndarray, seed: int, *,
             progress: Progress | None = None) -> SimulationResult:
    """Run one test per ability in ``thetas``; see the module for the seeding."""
    thetas = np.asarray(thetas, dtype=np.float64)
    n_items = len(placement.bank)
    given = np.zeros(n_items)
    selected = np.zeros(n_items)
    estimates = np.empty(len(thetas))
    ses = np.empty(len(thetas))
    lengths = np.empty(len(thetas), dtype=np.int64)
    steps: list[float] = []
    cpu: list[float] = []
    truth = probability(placement.bank, thetas)  # (examinees, items)
    position = {item: i for i, item in enumerate(placement.bank.ids)}
    for k, sequence in enumerate(examinee_seeds(seed, len(thetas))):
        session_seed, answer_seed = sequence.generate_state(2)
        session = placement.start(int(session_seed))
        draws = np.random.default_rng(int(answer_seed)).random(n_items)
        while True:
            start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
            item = session.next_item()
            if item is None:
                break
            index = position[item]
            session.answer(item, bool(draws[index] < truth[k, index]))
            steps.append((time.perf_counter_ns() - start) / 1e6)
            cpu.append((time.thread_time_ns() - start_cpu) / 1e6)
        result = session.estimate()
        estimates[k], ses[k], lengths[k] = result.theta, result.se, session.length
        used = [position[i] for i, _ in session.answers]
        given[used] += 1
        selected[used] += 1
        selected[session.set_aside] += 1
        if progress is not None:
            progress(k + 1, len(thetas))
    return SimulationResult(thetas, estimates, ses, lengths, given / len(thetas),
                            selected / len(thetas), np.array(steps), np.array(cpu))


def sympson_hetter(placement: Placement, r_max: float, thetas: np.ndarray, *, seed: int = 0,
                   iterations: int = 12, progress: Progress | None = None) -> np.ndarray:
    """Sympson-Hetter parameters for ``placement`` so that no item is given to more than
    ``r_max`` of a population like ``thetas`` (the classic iterative procedure).

    Each round simulates the population with the current parameters k and measures P(S), the
    share for whom each item is selected; then k = min(1, r_max / P(S)), so that P(A) =
    P(S) k <= r_max. Each round draws fresh answers and sessions (seeds ``seed + round``), so
    the parameters fit the population rather than one sample of its answers. Use other
    examinees than the ones a result is scored on.
    """
    if not 0 < r_max <= 1:
        raise ValueError(f"the exposure target must be in (0, 1], got {r_max}")
    control = np.ones(len(placement.bank))
    for round_ in range(iterations):
        run = simulate(replace(placement, control=control), thetas, seed + round_)
        control = np.where(run.selected > r_max, r_max / np.maximum(run.selected, 1e-12), 1.0)
        if progress is not None:
            progress(round_ + 1, iterations)
    return control
