from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.plumbing.settings import Settings
from tests.support import drop_databases, isolated_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return isolated_settings()


@pytest.fixture(scope="session", autouse=True)
def drop_this_runs_databases() -> Iterator[None]:
    """The databases this run wrote are dropped when it ends (CI starts from an empty store;
    a developer's would otherwise grow with every run)."""
    yield
    drop_databases()
