"""Fitted BKT parameters: one plain value, JSON in pyBKT's shape, a versioned file.

pyBKT's ``Model.coef_`` is the shape researchers already hold fitted models in::

    {skill: {"prior": 0.3, "learns": [0.1], "forgets": [0.0], "guesses": [0.2], "slips": [0.1]}}

so :meth:`BKTParams.to_pybkt` / :meth:`BKTParams.from_pybkt` speak it (lists instead of numpy
arrays), and a model fitted by pyBKT can be served here unchanged. Guess/slip come in *classes*:
one per skill in standard BKT, one per item and skill with per-item guess/slip (KT-IDEM, pyBKT's
``multigs``), where the class names (``gs_names``) are item ids. Each skill's last class,
named ``"default"``, serves answers to items the fit never saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

FILE_FORMAT = "tutor-bkt"
FILE_VERSION = 1
DEFAULT_CLASS = "default"


@dataclass(frozen=True, eq=False)
class BKTParams:
    """Per-skill BKT parameters; guess/slip per class, classes of skill k at ``gs_ptr[k]:[k+1]``."""

    skills: tuple[str, ...]
    prior: np.ndarray
    learn: np.ndarray
    forget: np.ndarray
    gs_ptr: np.ndarray
    gs_names: tuple[str, ...]
    guess: np.ndarray
    slip: np.ndarray

    def __post_init__(self) -> None:
        k = len(self.skills)
        if len(set(self.skills)) != k:
            raise ValueError("BKTParams.skills has duplicates")
        for name in ("prior", "learn", "forget"):
            if getattr(self, name).shape != (k,):
                raise ValueError(f"BKTParams.{name} must have one value per skill ({k})")
        g = len(self.gs_names)
        if self.gs_ptr.shape != (k + 1,) or self.gs_ptr[0] != 0 or self.gs_ptr[-1] != g:
            raise ValueError("BKTParams.gs_ptr must hold k+1 offsets from 0 to len(gs_names)")
        if k and np.any(np.diff(self.gs_ptr) < 1):
            raise ValueError("every skill needs at least one guess/slip class")
        if self.guess.shape != (g,) or self.slip.shape != (g,):
            raise ValueError("BKTParams.guess and .slip must have one value per class")
        for name in ("prior", "learn", "forget", "guess", "slip"):
            values = getattr(self, name)
            if not np.all((values >= 0.0) & (values <= 1.0)):
                raise ValueError(f"BKTParams.{name} must lie in [0, 1]")

    @property
    def default_class(self) -> np.ndarray:
        """Index of each skill's ``default`` class (its last)."""
        return self.gs_ptr[1:] - 1

    def skill_index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.skills)}

    # ------------------------------------------------------------------ pyBKT shape
    def to_pybkt(self) -> dict[str, dict[str, Any]]:
        """``{skill: {prior, learns, forgets, guesses, slips, gs_names}}`` with plain lists."""
        out: dict[str, dict[str, Any]] = {}
        for k, skill in enumerate(self.skills):
            lo, hi = self.gs_ptr[k], self.gs_ptr[k + 1]
            out[skill] = {
                "prior": float(self.prior[k]),
                "learns": [float(self.learn[k])],
                "forgets": [float(self.forget[k])],
                "guesses": self.guess[lo:hi].tolist(),
                "slips": self.slip[lo:hi].tolist(),
                "gs_names": list(self.gs_names[lo:hi]),
            }
        return out

    @classmethod
    def from_pybkt(cls, coef: dict[str, dict[str, Any]]) -> BKTParams:
        """Build from pyBKT's ``coef_`` (numpy arrays or lists; ``forgets`` optional).

        ``gs_names`` (pyBKT keeps them in ``fit_model[skill]["gs_names"]``) name the classes when
        a skill has several; a skill without a class named ``default`` gets one, the mean of its
        classes, for items the model has not seen.
        """
        skills, prior, learn, forget, names, guess, slip, ptr = [], [], [], [], [], [], [], [0]
        for skill, p in coef.items():
            where = f"parameters of skill {skill!r}"
            try:
                learns = np.atleast_1d(np.asarray(p["learns"], dtype=float))
                g = np.atleast_1d(np.asarray(p["guesses"], dtype=float))
                s = np.atleast_1d(np.asarray(p["slips"], dtype=float))
                pr = float(p["prior"])
            except KeyError as exc:
                raise ValueError(f"{where}: missing {exc.args[0]!r}") from None
            forgets = np.atleast_1d(np.asarray(p.get("forgets", [0.0]), dtype=float))
            if learns.size != 1 or forgets.size != 1:
                raise ValueError(f"{where}: several learn/forget classes (pyBKT multilearn) "
                                 "are not supported; fit without multilearn")
            if g.shape != s.shape:
                raise ValueError(f"{where}: guesses and slips differ in length")
            cls_names = [str(n) for n in p.get("gs_names", [])] or (
                [DEFAULT_CLASS] if g.size == 1 else [str(i) for i in range(g.size)])
            if len(cls_names) != g.size:
                raise ValueError(f"{where}: gs_names has {len(cls_names)} names for "
                                 f"{g.size} guess/slip classes")
            if DEFAULT_CLASS not in cls_names:
                cls_names.append(DEFAULT_CLASS)
                g, s = np.append(g, g.mean()), np.append(s, s.mean())
            elif cls_names[-1] != DEFAULT_CLASS:
                raise ValueError(f"{where}: the {DEFAULT_CLASS!r} class must come last")
            skills.append(str(skill))
            prior.append(pr)
            learn.append(learns[0])
            forget.append(forgets[0])
            names += cls_names
            guess.append(g)
            slip.append(s)
            ptr.append(ptr[-1] + g.size)
        return cls(
            skills=tuple(skills), prior=np.array(prior, dtype=float),
            learn=np.array(learn, dtype=float), forget=np.array(forget, dtype=float),
            gs_ptr=np.array(ptr, dtype=np.int64), gs_names=tuple(names),
            guess=np.concatenate(guess) if guess else np.empty(0),
            slip=np.concatenate(slip) if slip else np.empty(0),
        )

    # ------------------------------------------------------------------ versioned document
    def to_document(self, *, model: str, options: dict[str, Any]) -> dict[str, Any]:
        """A JSON-ready document that :meth:`from_document` reads back, tagged with format and
        version (what a parameter file holds)."""
        return {"format": FILE_FORMAT, "version": FILE_VERSION, "model": model,
                "options": options, "skills": self.to_pybkt()}

    @classmethod
    def from_document(cls, doc: Any, source: str) -> tuple[BKTParams, str, dict[str, Any]]:
        """Read a document written by :meth:`to_document`; returns (params, model name,
        options). Errors name ``source``."""
        if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT:
            raise ValueError(f"{source}: not a {FILE_FORMAT} parameter file "
                             "(for pyBKT's coef_ use BKT.from_pybkt)")
        if doc.get("version") != FILE_VERSION:
            raise ValueError(f"{source}: {FILE_FORMAT} version {doc.get('version')} is not "
                             f"supported (this engine reads version {FILE_VERSION})")
        return cls.from_pybkt(doc["skills"]), doc["model"], doc.get("options", {})
