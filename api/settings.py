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
        )
