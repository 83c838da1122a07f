"""The picture of ``tutor simulate --plot``: learning and retention curves per policy.

One row per learner-model family: on the left the share of course skills truly mastered at the
end of each day, on the right the expected test score on the course's items in the days after
the last session (no practice). Drawn with matplotlib's Agg backend, imported only here.
"""

from __future__ import annotations

from pathlib import Path

from engine.simulation.run import RETENTION_DAYS, Comparison
from training.plots import _save

__all__ = ["plot_comparison"]


def plot_comparison(result: Comparison, path: str | Path, title: str) -> None:
    """Draw every family's learning and retention curves, one line per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(result.runs)
    fig, axes = plt.subplots(len(families), 2, figsize=(9.0, 2.6 * len(families) + 0.6),
                             squeeze=False)
    colours = plt.get_cmap("tab10")
    for row, family in enumerate(families):
        learn, keep = axes[row]
        for c, (name, run) in enumerate(result.runs[family].items()):
            days = range(1, len(run.mastery_curve) + 1)
            learn.plot(days, run.mastery_curve, color=colours(c), label=name, linewidth=1.5)
            keep.plot(RETENTION_DAYS, run.retention_curve, color=colours(c), marker="o",
                      markersize=3, linewidth=1.5)
        learn.set_title(f"{family}: learning", fontsize=9)
        learn.set_xlabel("day")
        learn.set_ylabel("course skills truly mastered")
        keep.set_title(f"{family}: retention after the course", fontsize=9)
        keep.set_xlabel("days after the last session")
        keep.set_ylabel("expected test score")
        for ax in (learn, keep):
            ax.set_ylim(0, 1.0)
            ax.grid(alpha=0.25)
    axes[0][0].legend(fontsize=7, loc="upper left", frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
