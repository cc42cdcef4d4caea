from __future__ import annotations

import pytest

from services.plumbing.settings import Settings
from tests.support import isolated_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return isolated_settings()
