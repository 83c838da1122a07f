"""Generated courses: a seeded random skill graph with items, for simulations at any size.

The bundled packs have 6 to 12 skills per course; a policy comparison also needs larger and
deeper graphs (the speed target is a 20-skill course; issue 21 compares policies on 20 and 60
skills), and a generated one is the same for a seed on every machine. The content is what a
pack holds: skills with BKT parameters (the engine's belief about them, which the simulated
learners do not follow exactly) and prerequisites, items with IRT difficulty and
discrimination, and one course with every skill.
"""

from __future__ import annotations

import numpy as np

from engine.catalog import BKTSkillParams, Catalog, Course, Item, Skill

__all__ = ["BASE_SKILLS", "GENERATED_COURSE", "RECENT_SKILLS", "generated_catalog"]

#: the id of the one course of a generated catalog
GENERATED_COURSE = "generated"
#: the first skills, the course's base: roots, chains and joins drawn anywhere before them
BASE_SKILLS = 20
#: a skill beyond the base builds on one of this many skills just before it
RECENT_SKILLS = 10


def generated_catalog(n_skills: int, seed: int = 0, items_per_skill: int = 5) -> Catalog:
    """``n_skills`` skills ``g.s00``... in a random prerequisite DAG, each with
    ``items_per_skill`` items, and the course :data:`GENERATED_COURSE` of all of them.

    The first :data:`BASE_SKILLS` skills are the base: skill ``k`` requires one earlier skill
    with probability 0.7 and a second with 0.3 (so the graph has roots, chains and joins).
    Every later skill builds on recent material: it requires one of the :data:`RECENT_SKILLS`
    skills just before it, and with probability 0.3 also any earlier one. So the graph's depth
    grows with its size, as a real course's does (over seeds 0-9, 60 skills lie on 9-16 levels
    and 120 on 20-26, where prerequisites drawn anywhere gave 5-11 and 6-13; the base's 20 lie
    on 4-9), and a course of at most :data:`BASE_SKILLS` skills is the one it always was for
    its seed. BKT parameters are drawn in plausible ranges (prior 0.05-0.35, learn 0.1-0.35,
    guess 0.1-0.25, slip 0.05-0.15); an item's difficulty is its skill's depth in the graph,
    scaled to [-1.5, 1.5], plus N(0, 0.5) noise, its discrimination log-normal around 1. The
    last item of a skill with prerequisites also practises its first prerequisite (multi-skill
    items are normal).
    """
    if isinstance(n_skills, bool) or not isinstance(n_skills, int) or n_skills < 1:
        raise ValueError(f"a generated course needs at least 1 skill, got {n_skills!r}")
    if items_per_skill < 1:
        raise ValueError(f"items_per_skill must be at least 1, got {items_per_skill!r}")
    rng = np.random.default_rng(seed)
    ids = [f"g.s{k:02d}" for k in range(n_skills)]
    requires: list[tuple[str, ...]] = []
    depth = np.zeros(n_skills)
    for k in range(n_skills):
        reqs: list[int] = []
        if k >= BASE_SKILLS:
            reqs.append(k - 1 - int(rng.integers(RECENT_SKILLS)))
            if rng.random() < 0.3:
                reqs.append(int(rng.integers(k)))
        elif k and rng.random() < 0.7:
            reqs.append(int(rng.integers(k)))
            if k > 1 and rng.random() < 0.3:
                reqs.append(int(rng.integers(k)))
        reqs = sorted(set(reqs))
        depth[k] = 1 + max((depth[r] for r in reqs), default=-1)
        requires.append(tuple(ids[r] for r in reqs))
    level = -1.5 + 3.0 * depth / max(depth.max(), 1.0)
    skills = [Skill(ids[k], f"Generated skill {k}", requires=requires[k], bkt=BKTSkillParams(
        prior=round(float(rng.uniform(0.05, 0.35)), 3),
        learn=round(float(rng.uniform(0.1, 0.35)), 3),
        guess=round(float(rng.uniform(0.1, 0.25)), 3),
        slip=round(float(rng.uniform(0.05, 0.15)), 3))) for k in range(n_skills)]
    items = []
    for k, sid in enumerate(ids):
        for j in range(items_per_skill):
            with_prereq = j == items_per_skill - 1 and items_per_skill > 1 and requires[k]
            items.append(Item(
                f"{sid}.i{j}", (sid, requires[k][0]) if with_prereq else (sid,),
                difficulty=round(float(level[k] + rng.normal(0.0, 0.5)), 3),
                discrimination=round(float(np.exp(rng.normal(0.0, 0.25))), 3)))
    course = Course(GENERATED_COURSE, f"Generated course of {n_skills} skills", tuple(ids))
    return Catalog.build(skills, items, [course])
