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
    #: threads per worker running blocking calls (database, Redis, the engine); AnyIO's
    #: default, 40, lets that many request threads contend for the interpreter lock (8
    #: held 400 answers/s where 40 did not in bench/load.py on 2 cores)
    threads: int = 8

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
