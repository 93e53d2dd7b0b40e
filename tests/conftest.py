"""Fixtures shared by the tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

PG_URL = os.environ.get("SIGNSIM_TEST_PG_URL")
"""The PostgreSQL server of the tests (``.ci/run`` starts one and sets it)."""


@pytest.fixture
def pg_db() -> Iterator[str]:
    """A new, empty database on the test server; dropped afterwards (even on failure)."""
    psycopg = pytest.importorskip("psycopg")
    if PG_URL is None:
        pytest.skip("SIGNSIM_TEST_PG_URL not set (set by .ci/run)")
    name = f"signsim_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
