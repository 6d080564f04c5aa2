"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.unit.samsar_rig import MakeRig, rigs


@pytest.fixture
async def rig() -> AsyncIterator[MakeRig]:
    """Build SamsarClients over scripted answers (see `tests.unit.samsar_rig`)."""
    async with rigs() as make:
        yield make
