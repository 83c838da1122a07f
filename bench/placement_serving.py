"""What a placement costs the server per call on a large content pack: import, start, and each
``GET /placement``, ``GET /next`` and answer while the test runs, on SQLite in process.

A generated pack of ``--items`` calibrated items (``--skills`` skills, one course over all of
them; difficulties ~ N(0, 1), discriminations ~ N(1.2, 0.25), seeded) is imported into a new
tenant, and ``--learners`` learners each take a test of ``--length`` items; every call is
timed (wall, ms). The server's limits are lifted to the pack's size (``TUTOR_*`` settings).

    OMP_NUM_THREADS=1 .venv/bin/python bench/placement_serving.py --items 20000
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from api.app import create_app
from api.db import make_engine, upgrade
from api.settings import Settings
from api.tenants import create_tenant


def generated_pack(n_items: int, n_skills: int, seed: int) -> dict[str, Any]:
    """A valid pack of ``n_items`` calibrated items over ``n_skills`` skills, one course."""
    g = np.random.default_rng(seed)
    skills = [f"gen.s{k}" for k in range(n_skills)]
    items = [{"id": f"gen.i{i}", "skills": [skills[i % n_skills]], "kind": "exercise",
              "difficulty": round(float(g.normal(0, 1)), 3),
              "discrimination": round(float(np.clip(g.normal(1.2, 0.25), 0.2, None)), 3),
              "prompt": f"question {i}", "answer": str(i)} for i in range(n_items)]
    return {"format": "tutor-content-pack", "version": 1, "name": "generated",
            "title": "generated", "language": "en",
            "skills": [{"id": s, "name": s} for s in skills], "items": items,
            "courses": [{"id": "gen.course", "name": "all", "skills": skills}]}


def timed(call: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    response = call()
    assert response.status_code < 300, response.text
    return (time.perf_counter() - t0) * 1000, response.json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--skills", type=int, default=50)
    parser.add_argument("--learners", type=int, default=3)
    parser.add_argument("--length", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        engine = make_engine(url)
        _, key = create_tenant(engine, f"bench-{uuid.uuid4().hex[:8]}", 0.75)
        headers = {"Authorization": f"Bearer {key}"}
        document = generated_pack(args.items, args.skills, args.seed)
        settings = Settings(database_url=url, max_pack_bytes=1 << 30,
                            **limits(args.items))
        times: dict[str, list[float]] = {}
        with TestClient(create_app(settings)) as client:
            ms, _ = timed(lambda: client.post("/v1/content/packs", headers=headers,
                                              json=document))
            times["import"] = [ms]
            g = np.random.default_rng(args.seed)
            for n in range(args.learners):
                learner = f"l{n}"
                ms, test = timed(lambda learner=learner: client.post(
                    f"/v1/learners/{learner}/placement", headers=headers,
                    json={"course": "gen.course", "max_length": args.length,
                          "se_target": None}))
                times.setdefault("start", []).append(ms)
                item = test["next"]["item"]
                while item is not None:
                    for name, url_ in (("GET /placement", f"/v1/learners/{learner}/placement"),
                                       ("GET /next", f"/v1/learners/{learner}/next")):
                        ms, _ = timed(lambda u=url_: client.get(u, headers=headers))
                        times.setdefault(name, []).append(ms)
                    body = {"item_id": item, "correct": bool(g.random() < 0.5),
                            "event_id": str(uuid.uuid4())}
                    ms, done = timed(lambda b=body, learner=learner: client.post(
                        f"/v1/learners/{learner}/answers", headers=headers, json=b))
                    times.setdefault("answer", []).append(ms)
                    nxt = done["next"]
                    item = nxt["item"] if nxt and nxt["reason"].startswith("placement") \
                        else None
    print(json.dumps({"items": args.items, "ms": {
        k: {"median": round(statistics.median(v), 1), "max": round(max(v), 1), "n": len(v)}
        for k, v in times.items()}}, indent=1))


def limits(items: int) -> dict[str, Any]:
    """The settings that let a pack of ``items`` in (those this server has)."""
    fields = Settings.__dataclass_fields__
    return {name: items for name in ("max_content_items", "max_placement_items")
            if name in fields}


if __name__ == "__main__":
    main()
