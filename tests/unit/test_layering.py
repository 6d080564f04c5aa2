"""Imports point one way: bots → core ← storage; adapters never reach Samsar or the database."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE_FORBIDDEN = (
    "discord",
    "slack_bolt",
    "slack_sdk",
    "sqlmodel",
    "sqlalchemy",
    "storage",
    "bots",
    "sandbox",
    "aiohttp",
)
ADAPTER_FORBIDDEN = ("storage", "sandbox", "core.samsar", "httpx", "sqlmodel", "sqlalchemy")
WIRING = frozenset({"bootstrap.py", "cli.py"})


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def offenders(
    folder: str, forbidden: tuple[str, ...], skip: frozenset[str] = frozenset()
) -> list[str]:
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        if path.name in skip and path.parent == ROOT / folder:
            continue
        for module in imported_modules(path):
            if any(module == name or module.startswith(name + ".") for name in forbidden):
                bad.append(f"{path.relative_to(ROOT)} imports {module}")
    return bad


# The Samsar client's transport is aiohttp's HTTP pool behind httpx (core/samsar/transport.py):
# aiohttp there is an HTTP library, not a platform.
SAMSAR_TRANSPORT = "core/samsar/transport.py imports "


def test_core_imports_no_platform_or_storage_code() -> None:
    found = offenders("core", CORE_FORBIDDEN)
    assert [bad for bad in found if bad != SAMSAR_TRANSPORT + "aiohttp"] == []


def test_adapters_reach_samsar_and_storage_only_through_core() -> None:
    assert offenders("bots", ADAPTER_FORBIDDEN, skip=WIRING) == []


@pytest.mark.parametrize("module", ["storage", "bots", "sqlmodel"])
def test_the_check_itself_catches_a_forbidden_import(tmp_path: Path, module: str) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(f"import os\nfrom {module} import thing\n")
    assert module in imported_modules(sample)
