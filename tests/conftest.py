"""Fixtures shared by the tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.helpers import scratch_pg_database

PG_URL = os.environ.get("SIGNSIM_TEST_PG_URL")
"""The PostgreSQL server of the tests (``.ci/run`` starts one and sets it)."""


@pytest.fixture
def pg_db() -> Iterator[str]:
    """A new, empty database on the test server; dropped afterwards (even on failure)."""
    pytest.importorskip("psycopg")
    if PG_URL is None:
        pytest.skip("SIGNSIM_TEST_PG_URL not set (set by .ci/run)")
    with scratch_pg_database(PG_URL) as url:
        yield url
