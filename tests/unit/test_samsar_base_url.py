"""The API key never travels in clear: http:// to Samsar is refused unless it is loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bots.cli import app
from core.samsar.client import SamsarClient, check_base_url
from core.settings import Settings

LOOPBACK = [
    "http://127.0.0.1:8787/v1",
    "http://127.9.8.7/v1",
    "http://[::1]:8787/v1",
    "http://localhost:8787/v1",
    "http://LocalHost/v1",
    "https://api.samsar.one/v1",
]
REFUSED = [
    "http://api.samsar.one/v1",
    "http://10.0.0.5/v1",
    "http://127.0.0.1.example.com/v1",
    "http://localhost.example.com/v1",
    "http://[::2]/v1",
    "ftp://api.samsar.one/v1",
    "api.samsar.one/v1",
    "https://",
    "http://",
]


@pytest.mark.parametrize("url", LOOPBACK)
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    assert check_base_url(url) == url
    SamsarClient("sk-test", url)


@pytest.mark.parametrize("url", REFUSED)
def test_other_urls_are_refused_by_the_client(url: str) -> None:
    with pytest.raises(ValueError, match="base URL"):
        SamsarClient("sk-test", url)


def test_the_settings_refuse_http_to_a_remote_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMSAR_BASE_URL", "http://api.samsar.one/v1")
    with pytest.raises(ValueError, match="must use https://"):
        Settings()


def test_the_cli_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SAMSAR_BASE_URL", "http://api.samsar.one/v1")
    monkeypatch.setenv("SAMSAR_API_KEY", "sk-never-printed")
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    # A command that never calls Samsar: were the URL accepted, nothing leaves the machine.
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == [
        "Invalid setting SAMSAR_BASE_URL: the Samsar base URL must use https:// (http:// would "
        "send the API key in clear; it is allowed only for 127.0.0.1, ::1 or localhost)."
    ]
    assert "api.samsar.one" not in result.output and "sk-never-printed" not in result.output
