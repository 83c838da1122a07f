"""Service settings, from ``TUTOR_*`` environment variables (so every worker reads the same)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///./tutor.db"
    redis_url: str | None = None  # None: learner states cached in process
    max_body_bytes: int = 256 * 1024
    max_pack_bytes: int = 16 * 1024 * 1024
    key_cache_seconds: float = 2.0
    #: threads per worker running blocking calls (database, Redis, the engine): every request
    #: but the one-statement answers, which run on the event loop. A request waits for a few
    #: round trips and computes under the interpreter lock the rest of the time: two threads
    #: overlap one's waits with the other's work, and every thread more only contends for the
    #: lock (bench/load.py, PostgreSQL + Redis, 2 workers on 2 cores, all answers in threads,
    #: p99 at 1,000 answers/s: 54 ms with 2 threads; 8 threads held only 771/s; AnyIO's
    #: default is 40)
    threads: int = 2
    #: how far in the future an answer's ``answered_at`` may be (clients' clocks drift); a
    #: later time is refused: it would pin the learner's last answer time there
    max_clock_skew_seconds: float = 300.0
    #: origins that browser apps may call the API from (CORS); empty: no CORS headers at all
    cors_origins: tuple[str, ...] = ()
    #: seconds a request's headers may take to arrive, from its first byte (or from the
    #: connection, for its first request); then 408 and the connection is closed (slowloris).
    #: The body has ``body_timeout_seconds`` more (api.http_limits; ``tutor serve`` only)
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    #: items a tenant's content may hold, all its packs together (a larger import is refused):
    #: every worker loads the catalog after each import (bench/placement_serving.py, SQLite:
    #: 5,000 items import in 0.47 s and the next request, a placement's start, takes 0.19 s;
    #: 20,000 items 0.87 s and 1.2 s)
    max_content_items: int = 5_000
    #: calibrated items a placement test may draw from (a larger course cannot be placed in):
    #: its bank's tables are 2.6 kB an item and each answer's selection is a pass over them
    max_placement_items: int = 2_000
    #: bytes of placement banks' tables each worker keeps (least recently used evicted)
    placement_cache_bytes: int = 64 * 1024 * 1024
    #: seconds of computation a request may take where the work grows with a tenant's log
    #: (an experiment's results replay every answer of its learners): past it, 503
    #: ``over_budget`` naming the command that has no limit
    request_budget_seconds: float = 10.0
    #: cores' worth of CPU a tenant's blocking work may use on average in each worker while
    #: other tenants are being served (api.threads): one tenant pushing every limit at once
    #: (bench/noisy_neighbour.py) otherwise kept both cores busy and the others' answers
    #: waited; a tenant alone is never held back
    tenant_cpu_share: float = 0.5

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            database_url=env.get("TUTOR_DATABASE_URL", cls.database_url),
            redis_url=env.get("TUTOR_REDIS_URL") or None,
            max_body_bytes=int(env.get("TUTOR_MAX_BODY_BYTES", cls.max_body_bytes)),
            max_pack_bytes=int(env.get("TUTOR_MAX_PACK_BYTES", cls.max_pack_bytes)),
            key_cache_seconds=float(env.get("TUTOR_KEY_CACHE_SECONDS", cls.key_cache_seconds)),
            threads=int(env.get("TUTOR_THREADS", cls.threads)),
            max_clock_skew_seconds=float(env.get("TUTOR_MAX_CLOCK_SKEW_SECONDS",
                                                 cls.max_clock_skew_seconds)),
            cors_origins=tuple(o.strip() for o in env.get("TUTOR_CORS_ORIGINS", "").split(",")
                               if o.strip()),
            header_timeout_seconds=float(env.get("TUTOR_HEADER_TIMEOUT_SECONDS",
                                                 cls.header_timeout_seconds)),
            body_timeout_seconds=float(env.get("TUTOR_BODY_TIMEOUT_SECONDS",
                                               cls.body_timeout_seconds)),
            max_content_items=int(env.get("TUTOR_MAX_CONTENT_ITEMS", cls.max_content_items)),
            max_placement_items=int(env.get("TUTOR_MAX_PLACEMENT_ITEMS",
                                            cls.max_placement_items)),
            placement_cache_bytes=int(env.get("TUTOR_PLACEMENT_CACHE_BYTES",
                                              cls.placement_cache_bytes)),
            request_budget_seconds=float(env.get("TUTOR_REQUEST_BUDGET_SECONDS",
                                                 cls.request_budget_seconds)),
            tenant_cpu_share=float(env.get("TUTOR_TENANT_CPU_SHARE", cls.tenant_cpu_share)),
        )
