"""Settings come from the environment (and .env, for the CLI), every one is documented, and
secrets never print."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from bots.cli import settings_problems
from core.settings import ENV_FILE, Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_env_example() -> None:
    documented = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_each_variable_in_env_example_has_a_comment_above() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^[A-Z0-9_]+=", line):
            assert lines[index - 1].startswith("#"), line


def test_blank_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SAMSAR_API_KEY", "SLACK_APP_TOKEN", "DISCORD_TOKEN", "MAX_OUTPUT_TOKENS"):
        monkeypatch.setenv(name, "")
    settings = Settings()
    assert settings.samsar_api_key is None and settings.slack_app_token is None
    assert settings.discord_token is None and settings.max_output_tokens is None


def test_lists_and_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMSAR_API_KEY", "sk-very-secret")
    monkeypatch.setenv("ADMIN_USER_KEYS", "discord:1, slack:T1:U2")
    monkeypatch.setenv("SAMSAR_BASE_URL", "http://127.0.0.1:9/v1/")
    settings = Settings()
    assert settings.admin_user_keys == ("discord:1", "slack:T1:U2")
    assert settings.samsar_base_url == "http://127.0.0.1:9/v1"
    assert settings.samsar_api_key is not None
    assert settings.samsar_api_key.get_secret_value() == "sk-very-secret"
    assert "sk-very-secret" not in repr(settings) and "sk-very-secret" not in str(settings)


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("IMAGE_SIZE", "huge", "Invalid setting IMAGE_SIZE: size must be auto or WIDTHxHEIGHT"),
        (
            "IMAGE_QUALITY",
            "ultra",
            "Invalid setting IMAGE_QUALITY: quality must be one of auto, low, medium, high.",
        ),
        ("IMAGE_FORMAT", "bmp", "Invalid setting IMAGE_FORMAT: format must be one of png"),
    ],
)
def test_image_settings_are_checked_at_start_with_one_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, said: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert settings_problems(caught.value).startswith(said)


def test_image_settings_are_kept_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGE_FORMAT", "JPG")
    monkeypatch.setenv("IMAGE_SIZE", " 512X512 ")
    settings = Settings()
    assert (settings.image_format, settings.image_size) == ("jpeg", "512x512")


def test_discord_shards_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings().discord_shard_count, Settings().discord_shard_ids) == (None, ())
    monkeypatch.setenv("DISCORD_SHARD_COUNT", "4")
    monkeypatch.setenv("DISCORD_SHARD_IDS", "2, 3")
    settings = Settings()
    assert (settings.discord_shard_count, settings.discord_shard_ids) == (4, (2, 3))


@pytest.mark.parametrize(
    ("count", "ids", "said"),
    [
        ("", "1", "Invalid setting DISCORD_SHARD_IDS: needs DISCORD_SHARD_COUNT"),
        ("2", "2", "Invalid setting DISCORD_SHARD_IDS: shard numbers run from 0 to 1"),
        ("2", "0,x", "Invalid setting DISCORD_SHARD_IDS: comma-separated shard numbers"),
        ("3", "1,1", "Invalid setting DISCORD_SHARD_IDS: a shard is named twice."),
        ("0", "", "Invalid setting DISCORD_SHARD_COUNT: Input should be greater than or equal"),
    ],
)
def test_discord_shards_that_cannot_work_are_refused_with_one_line(
    monkeypatch: pytest.MonkeyPatch, count: str, ids: str, said: str
) -> None:
    monkeypatch.setenv("DISCORD_SHARD_COUNT", count)
    monkeypatch.setenv("DISCORD_SHARD_IDS", ids)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert settings_problems(caught.value).startswith(said)


def test_settings_built_in_code_never_read_a_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A developer's .env where the tests run must not leak into the settings tests build.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SAMSAR_API_KEY", raising=False)
    (tmp_path / ENV_FILE).write_text("SAMSAR_API_KEY=from-dotenv\nLOG_FORMAT=json\n")
    settings = Settings()
    assert settings.samsar_api_key is None and settings.log_format == "text"
    read = Settings(_env_file=ENV_FILE)  # as the CLI builds them
    assert read.samsar_api_key is not None
    assert read.samsar_api_key.get_secret_value() == "from-dotenv"
    assert read.log_format == "json"


def test_the_log_level_and_format_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", " warning ")
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    settings = Settings()
    assert (settings.log_level, settings.log_format) == ("WARNING", "json")
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert settings_problems(caught.value) == (
        "Invalid setting LOG_FORMAT: Input should be 'text' or 'json'."
    )


@pytest.mark.parametrize(
    ("env", "said"),
    [
        (
            {
                "SLACK_BOT_TOKEN": "xoxb-1",
                "SLACK_CLIENT_ID": "1.2",
                "SLACK_CLIENT_SECRET": "s",
                "SLACK_SIGNING_SECRET": "x",
            },
            "not both",
        ),
        ({"SLACK_CLIENT_ID": "1.2", "SLACK_SIGNING_SECRET": "x"}, "go together"),
        ({"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "s"}, "needs SLACK_SIGNING_SECRET"),
        (
            {
                "SLACK_CLIENT_ID": "1.2",
                "SLACK_CLIENT_SECRET": "s",
                "SLACK_SIGNING_SECRET": "x",
                "SLACK_APP_TOKEN": "xapp-1",
            },
            "no SLACK_APP_TOKEN",
        ),
        ({"TOKEN_ENCRYPTION_KEY": "not-a-key"}, "Invalid setting TOKEN_ENCRYPTION_KEY: not Fernet"),
    ],
)
def test_slack_distribution_settings_that_cannot_work_are_one_line(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], said: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    [line] = settings_problems(caught.value).splitlines()
    assert said in line and "not-a-key" not in line and "xoxb-1" not in line


def test_slack_distribution_settings_that_work(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "SLACK_CLIENT_ID": "1.2",
        "SLACK_CLIENT_SECRET": "s",
        "SLACK_SIGNING_SECRET": "x",
        "SLACK_SCOPES": "chat:write, commands",
        "SLACK_SUGGESTED_PROMPTS": "Draw: a fox | just ask",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.slack_distributed and settings.slack_scopes == ("chat:write", "commands")
    assert settings.slack_suggested_prompts == ("Draw: a fox", "just ask")
