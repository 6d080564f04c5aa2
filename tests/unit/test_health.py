"""Readiness says what is not ready: a platform down, a database that does not answer."""

from __future__ import annotations

import httpx

from bots import health


async def test_readiness_follows_the_platforms_and_the_database() -> None:
    answers = {"database": True}

    async def database() -> None:
        if not answers["database"]:
            raise ConnectionError("the database is down")

    health.connected("discord", False)
    async with (
        health.health_server("127.0.0.1", 0, platforms=["discord"], database=database) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        down = await http.get("/readyz")
        assert down.status_code == 503 and down.json()["platforms"] == {"discord": "down"}
        health.connected("discord", True)
        assert (await http.get("/readyz")).status_code == 200
        answers["database"] = False
        unreachable = await http.get("/readyz")
        assert unreachable.status_code == 503 and unreachable.json()["database"] == "unreachable"
        assert (await http.get("/healthz")).status_code == 200  # the process still serves
    health.connected("discord", False)
