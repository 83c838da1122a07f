"""The serving tests' fixtures (real backends, in-process apps), for the simulated learners that
drive the API over HTTP (``test_http.py``)."""

from serving.conftest import (  # noqa: F401  (fixtures, found by pytest under these names)
    backend,
    make_client,
    pg_backend,
    postgres_url,
    redis_url,
    sqlite_backend,
)
