"""All configuration: the environment, and a `.env` file where the CLI is started (every
variable is in `.env.example`)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

from cryptography.fernet import Fernet
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.conversation.limits import check_image_options
from core.errors import InputRejected
from core.models import ImageOptions
from core.samsar.client import check_base_url

DEFAULT_SAMSAR_BASE_URL = "https://api.samsar.one/v1"
DEFAULT_DISCORD_API_URL = "https://discord.com/api/v10"
DEFAULT_DISCORD_GATEWAY_URL = "wss://gateway.discord.gg/"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"

ENV_FILE = ".env"
"""Read by `samsar-bot` from its working directory; the environment wins over it."""
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")

CommaList = Annotated[tuple[str, ...], NoDecode]


class Settings(BaseSettings):
    """The bot's settings; secrets are `SecretStr` so they never print."""

    # A variable set to "" (as copied from .env.example) counts as unset. No file is read
    # unless asked for (`Settings(_env_file=ENV_FILE)`, as the CLI does): a test, or any
    # other code that builds settings, never picks up a developer's .env by accident.
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", frozen=True, env_ignore_empty=True, populate_by_name=True
    )

    # Samsar
    samsar_api_key: SecretStr | None = None
    samsar_base_url: str = DEFAULT_SAMSAR_BASE_URL
    samsar_timeout: float = Field(30.0, gt=0)
    samsar_completion_timeout: float = Field(180.0, gt=0)
    samsar_retry_attempts: int = Field(3, ge=1, le=10)

    # Storage
    database_url: SecretStr | None = None
    data_dir: Path = Path("./data")
    database_pool_size: int = Field(10, ge=1)
    database_connect_timeout: float = Field(10.0, gt=0)

    # Durable turns
    turn_lease_seconds: float = Field(30.0, ge=1)
    # Turns one replica runs at once; more wait in the ledger (MAX_RUNNING_TURNS: its old name)
    max_concurrent_turns: int = Field(
        64, ge=1, validation_alias=AliasChoices("max_concurrent_turns", "max_running_turns")
    )
    # Each member's turns: refilled per minute, and how many at once (0 per minute: no limit)
    member_turns_per_minute: float = Field(10.0, ge=0)
    member_turn_burst: int = Field(5, ge=1)
    # Credits the "Buy credits" button of an out-of-credits answer checks out (0: no button)
    buy_link_credits: int = Field(100, ge=0, le=100_000)
    samsar_patience: float = Field(900.0, ge=0)
    delivery_tries: int = Field(10, ge=1)
    turn_retention_days: float = Field(30.0, gt=0)

    # The assistant
    image_tool_on_ask: bool = True
    image_size: str = "1024x1024"
    image_quality: str = "auto"
    image_format: str = "png"
    max_output_tokens: int | None = Field(None, gt=0)

    # Input limits
    max_input_chars: int = Field(8000, gt=0)
    max_input_images: int = Field(4, ge=0)
    max_input_image_bytes: int = Field(8 * 1024 * 1024, gt=0)

    # Who is admin beyond what the platform says: user keys like discord:123, slack:T1:U2
    admin_user_keys: CommaList = ()

    # Platforms (used by `samsar-bot run`)
    discord_token: SecretStr | None = None
    discord_guild_ids: CommaList = ()
    # Discord shards: how many the bot has in all, and which of them this process runs (unset:
    # discord.py asks Discord for the recommended count and runs every shard here).
    discord_shard_count: int | None = Field(None, ge=1)
    discord_shard_ids: Annotated[tuple[int, ...], NoDecode] = ()
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_host: str = "0.0.0.0"
    slack_port: int = Field(3000, ge=0, le=65535)
    # Distribution ("Add to Slack"): every workspace that installs the app, over HTTP
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    slack_scopes: CommaList = ()  # default: the manifest's bot scopes
    slack_redirect_uri: str | None = None
    # Suggested prompts of a new assistant thread, "|"-separated, each "Title: message"
    slack_suggested_prompts: Annotated[tuple[str, ...], NoDecode] = (
        "Draw a picture: Draw a watercolor fox in a snowy forest",
        "Explain something: Explain how rainbows form, in three sentences",
        "Write something: Write a friendly welcome message for a new teammate",
    )
    # Bot tokens of installations encrypted at rest (comma-separated: the first encrypts)
    token_encryption_key: SecretStr | None = None
    # Servers the bot stays in (unset: any); it leaves the others and ignores them meanwhile.
    discord_allowed_guilds: CommaList = ()
    # Where the platforms' APIs are (for proxies and tests; the defaults are the real ones).
    discord_api_url: str = DEFAULT_DISCORD_API_URL
    discord_gateway_url: str = DEFAULT_DISCORD_GATEWAY_URL
    slack_api_url: str = DEFAULT_SLACK_API_URL

    # Seconds `samsar-bot run` lets running turns finish after SIGTERM/SIGINT
    shutdown_grace: float = Field(120.0, ge=0)
    # `samsar-bot run`'s /healthz, /readyz and /metrics (unset: not served)
    health_port: int | None = Field(None, ge=0, le=65535)
    health_host: str = "127.0.0.1"

    # Console bot
    console_image_dir: Path = Path("./images")
    console_user: str = "you"

    # Sandbox (the offline Samsar)
    sandbox_start_credits: int = Field(100, ge=0)

    log_level: str = "INFO"
    # text: one line with key=value fields; json: one JSON object per line, for log shippers
    log_format: Literal["text", "json"] = "text"

    @field_validator(
        "admin_user_keys",
        "discord_guild_ids",
        "discord_allowed_guilds",
        "slack_scopes",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("discord_shard_ids", mode="before")
    @classmethod
    def _split_shard_ids(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not all(part.isascii() and part.isdigit() for part in parts):
            raise ValueError("comma-separated shard numbers, e.g. 0,1")
        return tuple(int(part) for part in parts)

    @field_validator("discord_shard_ids")
    @classmethod
    def _shards_of_the_count(cls, value: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
        """Each shard once, and below DISCORD_SHARD_COUNT (which they need)."""
        if not value or "discord_shard_count" not in info.data:
            return value  # none given, or the count is invalid itself (that error is reported)
        count = info.data["discord_shard_count"]
        if count is None:
            raise ValueError("needs DISCORD_SHARD_COUNT, the number of shards in all")
        if len(set(value)) != len(value):
            raise ValueError("a shard is named twice")
        if any(shard >= count for shard in value):
            raise ValueError(f"shard numbers run from 0 to {count - 1} (DISCORD_SHARD_COUNT)")
        return value

    @field_validator("discord_guild_ids", "discord_allowed_guilds")
    @classmethod
    def _guild_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for guild_id in value:
            if not (guild_id.isascii() and guild_id.isdigit() and len(guild_id) <= 20):
                raise ValueError("must be Discord server ids (numbers), separated by commas")
        return value

    @field_validator("slack_host", "health_host")
    @classmethod
    def _listen_host(cls, value: str) -> str:
        host = value.strip()
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not _HOST_NAME.fullmatch(host):
                raise ValueError(
                    "must be an address (0.0.0.0, 127.0.0.1, ::) or a host name"
                ) from None
        return host

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError("must be one of " + ", ".join(LOG_LEVELS))
        return level

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("image_size", "image_quality", "image_format")
    @classmethod
    def _image_option(cls, value: str, info: ValidationInfo) -> str:
        """Checked at start, as a member's choice would be: a typo here must not turn every
        later message into a refusal from Samsar."""
        name = str(info.field_name).removeprefix("image_")
        try:
            checked = check_image_options(ImageOptions(**{name: value}))
        except InputRejected as exc:
            raise ValueError(exc.detail or "not a value the image tool takes") from None
        return str(getattr(checked, name))

    @field_validator("slack_suggested_prompts", mode="before")
    @classmethod
    def _split_bars(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split("|") if part.strip())
        return value

    @field_validator("token_encryption_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        """Every comma-separated part is a Fernet key (the error never shows one)."""
        if value is None:
            return None
        parts = [part.strip() for part in value.get_secret_value().split(",") if part.strip()]
        try:
            for part in parts or [""]:
                Fernet(part)
        except ValueError:
            raise ValueError(
                "not Fernet keys (each 32 url-safe base64 bytes, comma-separated; make one "
                "with `samsar-bot slack new-key`)"
            ) from None
        return value

    @model_validator(mode="after")
    def _one_slack_mode(self) -> Settings:
        """One workspace (SLACK_BOT_TOKEN) or every workspace that installs the app
        (SLACK_CLIENT_ID with its secret and the signing secret), never both."""
        if self.slack_client_id is None and self.slack_client_secret is None:
            return self
        if self.slack_bot_token is not None:
            raise ValueError(
                "SLACK_BOT_TOKEN and SLACK_CLIENT_ID are both set: set SLACK_BOT_TOKEN for one "
                "workspace, or SLACK_CLIENT_ID with SLACK_CLIENT_SECRET for every workspace that "
                "installs the app, not both"
            )
        if self.slack_client_id is None or self.slack_client_secret is None:
            raise ValueError("SLACK_CLIENT_ID and SLACK_CLIENT_SECRET go together: set both")
        if self.slack_signing_secret is None or self.slack_app_token is not None:
            raise ValueError(
                "SLACK_CLIENT_ID needs SLACK_SIGNING_SECRET and no SLACK_APP_TOKEN: installed "
                "workspaces are served over HTTP (Slack does not list Socket Mode apps)"
            )
        return self

    @property
    def slack_distributed(self) -> bool:
        """Whether Slack serves every workspace that installs the app."""
        return self.slack_client_id is not None

    @field_validator("samsar_base_url")
    @classmethod
    def _safe_base_url(cls, value: str) -> str:
        return check_base_url(value).rstrip("/")
