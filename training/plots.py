"""Pictures made by ``tutor plot``: a content pack's prerequisite graph, and one simulated
learner's mastery over their answers (the calibration diagram is ``tutor replay --plot``).

Both are drawn with matplotlib's Agg backend (no display needed); matplotlib is imported only
when a picture is drawn, so the ``tutor`` command starts as fast without it. The simulation
(:func:`simulate_learner`) is separate from its drawing and uses only the public tracer contract
(:class:`~engine.tracing.base.Tracer`: ``new_state``, ``update``, ``mastery``,
``predict_correct``) and the engine's own selection policy, so any registered model can drive it.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from content.packs import Pack, bundled_packs, catalog_from_packs
from engine.catalog import Catalog
from engine.events import AnswerEvent
from engine.selection import SelectionContext, TargetSuccessPolicy
from engine.tracing.base import Tracer

__all__ = ["LearnerRun", "find_pack", "graph_layout", "plot_graph", "plot_mastery",
           "simulate_learner"]

#: picture sizes: small enough for a README (tens of KB), large enough to read
_DPI = 100
_LEARNER = "simulated-learner"


# ====================================================================== packs
def find_pack(pack: str) -> Path:
    """The file of ``pack``: a bundled pack's name (``math-basics``) or short name (``math``), or
    a pack file. FileNotFoundError naming the bundled packs when it is none of these."""
    bundled = bundled_packs()
    by_short_name = {path.stem: path for path in bundled.values()}
    path = bundled.get(pack) or by_short_name.get(pack) or Path(pack)
    if not path.is_file():
        names = ", ".join(f"{p.stem} ({name})" for name, p in bundled.items())
        raise FileNotFoundError(f"no pack {pack!r}: give a bundled pack ({names}) or a pack file")
    return path


def _skill_courses(pack: Pack) -> dict[str, str]:
    """Each skill's course: the smallest course listing it (a course of every skill says
    nothing about one skill); skills in no course are left out."""
    home: dict[str, str] = {}
    for course in sorted(pack.courses, key=lambda c: len(c.skills)):
        for skill in course.skills:
            home.setdefault(skill, course.id)
    return home


# ====================================================================== the prerequisite graph
def graph_layout(catalog: Catalog, sweeps: int = 8) -> dict[str, tuple[float, int]]:
    """Positions ``(x, layer)`` of every skill: layer = prerequisite depth (0: no
    prerequisites; else one more than its deepest prerequisite), x = rank in the layer.

    Within a layer, skills are ordered by the mean position of their neighbours in the layers
    above and below (the barycentre heuristic, a few sweeps down and up), which keeps arrows
    short and crossings few; ties keep the pack's order. Rows are centred on each other.
    """
    depth: dict[str, int] = {}
    for skill in catalog.order:  # prerequisites come first
        requires = catalog.skills[skill].requires
        depth[skill] = 1 + max((depth[r] for r in requires), default=-1)
    position = {s: k for k, s in enumerate(catalog.skills)}
    layers: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for skill in catalog.skills:
        layers[depth[skill]].append(skill)
    below: dict[str, list[str]] = {s: [] for s in catalog.skills}
    for node in catalog.skills.values():
        for r in node.requires:
            below[r].append(node.id)
    above = {s: list(catalog.skills[s].requires) for s in catalog.skills}

    def x_of(layer: list[str]) -> dict[str, float]:
        return {s: k - (len(layer) - 1) / 2 for k, s in enumerate(layer)}

    def reorder(layer: list[str], neighbours: dict[str, list[str]], x: dict[str, float],
                ) -> list[str]:
        def key(skill: str) -> tuple[float, int]:
            near = [x[n] for n in neighbours[skill] if n in x]
            return (float(np.mean(near)) if near else x.get(skill, 0.0), position[skill])
        return sorted(layer, key=key)

    for sweep in range(sweeps):
        downward = sweep % 2 == 0
        indices = range(1, len(layers)) if downward else range(len(layers) - 2, -1, -1)
        for i in indices:
            x: dict[str, float] = {}
            for layer in layers:
                x.update(x_of(layer))
            layers[i] = reorder(layers[i], above if downward else below, x)
    out: dict[str, tuple[float, int]] = {}
    for i, layer in enumerate(layers):
        for skill, x_pos in x_of(layer).items():
            out[skill] = (x_pos, i)
    return out


def plot_graph(pack: Pack, path: str | Path) -> None:
    """Draw ``pack``'s prerequisite graph to ``path``: one row per prerequisite depth, an arrow
    from each prerequisite to the skill that needs it, skills coloured by course when the pack
    has several."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    catalog = catalog_from_packs([pack])
    layout = graph_layout(catalog)
    rows = 1 + max((y for _, y in layout.values()), default=0)
    widest = max(Counter(y for _, y in layout.values()).values(), default=1)
    home = _skill_courses(pack) if len(pack.courses) > 1 else {}
    courses = [c for c in pack.courses if c.id in set(home.values())]
    palette = ["#cfe2f3", "#fce5cd", "#d9ead3", "#ead1dc", "#fff2cc", "#d0e0e3", "#f4cccc"]
    colour = {c.id: palette[k % len(palette)] for k, c in enumerate(courses)}

    width = min(12.0, 1.6 + 2.1 * widest)
    fig, ax = plt.subplots(figsize=(width, 0.85 + 0.8 * rows))
    boxes = {}
    for skill, (x, y) in layout.items():
        label = "\n".join(textwrap.wrap(catalog.skills[skill].name or skill, 22))
        boxes[skill] = ax.text(
            x, -y, label, ha="center", va="center", fontsize=7, zorder=3,
            bbox={"boxstyle": "round,pad=0.35", "facecolor": colour.get(home.get(skill, ""),
                                                                         "#eeeeee"),
                  "edgecolor": "#555555", "linewidth": 0.6})
    for needer in catalog.skills.values():
        x1, y1 = layout[needer.id]
        for req in needer.requires:
            x0, y0 = layout[req]
            span = y1 - y0
            # an arrow that skips rows bends, so it does not run through the boxes between
            rad = 0.0 if span == 1 else (0.25 if x1 >= x0 else -0.25)
            ax.annotate("", xy=(x1, -y1), xytext=(x0, -y0), zorder=2, arrowprops={
                "arrowstyle": "-|>", "color": "#666666", "linewidth": 0.7, "mutation_scale": 8,
                "connectionstyle": f"arc3,rad={rad}", "shrinkA": 2, "shrinkB": 2,
                "patchA": boxes[req].get_bbox_patch(),
                "patchB": boxes[needer.id].get_bbox_patch()})
    half = max(widest - 1, 1) / 2
    ax.set_xlim(-half - 0.75, half + 0.75)
    ax.set_ylim(-(rows - 1) - 0.5, 0.5)
    ax.axis("off")
    ax.set_title(f"{pack.title}: {len(catalog.skills)} skills, prerequisites above the skills "
                 "that need them", fontsize=9)
    if courses:
        ax.legend(handles=[Patch(facecolor=colour[c.id], edgecolor="#555555", label=c.name)
                           for c in courses], loc="upper center", bbox_to_anchor=(0.5, 0.0),
                  ncol=1 if len(courses) > 3 else len(courses), fontsize=7, frameon=False)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


# ====================================================================== one simulated learner
@dataclass(frozen=True, slots=True)
class LearnerRun:
    """One simulated learner, answer by answer.

    ``skills`` are the skills practised, in the order first practised; ``mastery[n, k]`` is
    P(mastered) of ``skills[k]`` after ``n`` answers (row 0: before any). Per answer:
    ``items``, ``answer_skills`` (the skills it practises), ``p_correct`` (the prediction the
    answer was drawn from) and ``correct``. ``stopped`` says why the run ended before the
    answers asked for (empty when it did not).
    """

    skills: tuple[str, ...]
    mastery: np.ndarray
    items: tuple[str, ...]
    answer_skills: tuple[tuple[str, ...], ...]
    p_correct: np.ndarray
    correct: np.ndarray
    stopped: str = ""

    def __len__(self) -> int:
        return len(self.items)


def simulate_learner(tracer: Tracer[Any], catalog: Catalog, answers: int, seed: int = 0, *,
                     target_success: float = 0.75) -> LearnerRun:
    """One learner working through ``catalog`` for up to ``answers`` answers.

    The engine's selection policy (:class:`TargetSuccessPolicy`, as the API uses it) picks each
    next item from the learner's state; the answer is right with the probability the tracer
    predicts for it (a learner exactly as the model believes learners are), drawn from a numpy
    generator seeded with ``seed``; the tracer then updates the state. The same arguments give
    the same run.
    """
    if answers < 1:
        raise ValueError(f"answers must be at least 1, got {answers}")
    unknown = [s for s in catalog.skills if s not in set(tracer.skills)]
    if unknown:
        raise ValueError(
            f"the {tracer.name} model does not know {len(unknown)} of the pack's "
            f"{len(catalog.skills)} skills (e.g. {', '.join(map(repr, unknown[:3]))}): use a "
            "model fitted on this pack's answers")
    rng = np.random.default_rng(seed)
    policy = TargetSuccessPolicy(target_success=target_success, seed=seed)
    every = tuple(catalog.skills)
    state = tracer.new_state()
    rows = [tracer.mastery(state, every)]
    items: list[str] = []
    answer_skills: list[tuple[str, ...]] = []
    p_correct: list[float] = []
    correct: list[bool] = []
    stopped = ""
    for _ in range(answers):
        context = SelectionContext(recent_items=tuple(items[-10:]), learner=_LEARNER)
        choices = policy.choose(tracer, state, catalog, context)
        if not choices:
            stopped = policy.explain_empty(tracer, state, catalog, context) or "nothing to answer"
            break
        choice = choices[0]
        p = tracer.predict_correct(state, choice.item, choice.skills)
        right = bool(rng.random() < p)
        state = tracer.update(state, AnswerEvent(_LEARNER, choice.item, choice.skills, right))
        items.append(choice.item)
        answer_skills.append(choice.skills)
        p_correct.append(p)
        correct.append(right)
        rows.append(tracer.mastery(state, every))
    practised = tuple(dict.fromkeys(s for skills in answer_skills for s in skills))
    mastery = np.array([[row[s] for s in practised] for row in rows], dtype=float)
    return LearnerRun(skills=practised, mastery=mastery.reshape(len(rows), len(practised)),
                      items=tuple(items), answer_skills=tuple(answer_skills),
                      p_correct=np.array(p_correct, dtype=float),
                      correct=np.array(correct, dtype=bool), stopped=stopped)


def plot_mastery(run: LearnerRun, catalog: Catalog, path: str | Path, title: str,
                 legend: int = 6, threshold: float = 0.95) -> None:
    """Draw ``run`` to ``path``: P(mastered) of each skill practised over the answer number,
    each answer marked on its skill's line (dot: right, cross: wrong). The ``legend`` most
    practised skills are coloured and named, the others grey; a line is solid from just before
    the skill's first answer to its last, faint afterwards. The dashed line is selection's
    mastery threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.0, 4.0))
    n = np.arange(len(run) + 1)
    counts = Counter(s for skills in run.answer_skills for s in skills)
    named = [s for s, _ in counts.most_common(legend)]
    colours = plt.get_cmap("tab10")
    ax.axhline(threshold, color="grey", linestyle="--", linewidth=0.8,
               label=f"mastered ({threshold:g}): selection moves on")
    for skill in sorted(run.skills, key=lambda s: s in named):  # named skills drawn on top
        k = run.skills.index(skill)
        colour = colours(named.index(skill)) if skill in named else "#aaaaaa"
        answered = np.array([skill in s for s in run.answer_skills], dtype=bool)
        first, last = np.flatnonzero(answered)[[0, -1]] + 1
        name = catalog.skills[skill].name if skill in catalog.skills else skill
        label = f"{textwrap.shorten(name, 34, placeholder='...')} ({counts[skill]})"
        width = 1.6 if skill in named else 1.0
        ax.plot(n[first - 1:last + 1], run.mastery[first - 1:last + 1, k], color=colour,
                drawstyle="steps-post", linewidth=width, label=label if skill in named else None)
        ax.plot(n[last:], run.mastery[last:, k], color=colour, drawstyle="steps-post",
                linewidth=width * 0.6, alpha=0.4)
        right, wrong = answered & run.correct, answered & ~run.correct
        after = run.mastery[1:, k]
        ax.scatter(n[1:][right], after[right], s=12, color=colour, zorder=3)
        ax.scatter(n[1:][wrong], after[wrong], s=24, color=colour, marker="x", zorder=3,
                   linewidths=1.3)
    others = len(run.skills) - len(named)
    if others > 0:
        ax.plot([], [], color="#aaaaaa", label=f"{others} other skill{'s' * (others > 1)}")
    ax.scatter([], [], s=12, color="black", label="right answer")
    ax.scatter([], [], s=24, color="black", marker="x", label="wrong answer")
    ax.set_xlim(0, max(len(run), 1))
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("answer number")
    ax.set_ylabel("P(mastered) after the answer")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.25)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              title="most practised skills (answers)", title_fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _save(fig: Any, path: str | Path) -> None:
    """Save ``fig``; a PNG is reduced to a 256-colour palette (a third of the bytes, no visible
    change for line drawings) so the pictures stay small enough for a README."""
    if Path(path).suffix.lower() != ".png":
        fig.savefig(path, dpi=_DPI)
        return
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=_DPI, format="png")
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(256).save(path, format="png", optimize=True)
