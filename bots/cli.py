"""The `samsar-bot` command: console, run, sandbox, db upgrade, account prompt."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import uuid
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

from bots import logs, texts
from bots.bootstrap import (
    App,
    MissingSettingError,
    SettingUnusable,
    opened_store,
    wire,
    workers_warming,
)
from bots.console.bot import ConsoleBot
from bots.health import health_server
from bots.supervisor import AllPlatformsFailed, Platform, serve
from core.errors import (
    AuthenticationFailed,
    BotError,
    SamsarTimeout,
    SamsarUnreachable,
    UpstreamError,
)
from core.models import ChatUser
from core.settings import ENV_FILE, Settings
from storage.slack_installations import Installed
from storage.slack_sealing import WrongKey, new_key
from storage.store import SqlStore

Runner = Callable[[App], Coroutine[Any, Any, None]]
T = TypeVar("T")
log = logging.getLogger(__name__)

# Locals are never shown in tracebacks: they may hold secrets.
app = typer.Typer(
    no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_show_locals=False
)
db_app = typer.Typer(no_args_is_help=True, help="Database migrations.")
prompt_app = typer.Typer(no_args_is_help=True, help="The Samsar account-level prompt.")
app.add_typer(db_app, name="db")
credits_app = typer.Typer(no_args_is_help=True, help="Members' Samsar credits.")
app.add_typer(prompt_app, name="prompt")
app.add_typer(credits_app, name="credits")
slack_app = typer.Typer(
    no_args_is_help=True, help="Slack distribution: installed workspaces and their tokens."
)
app.add_typer(slack_app, name="slack")


def version() -> str:
    """The installed samsar-bots version."""
    try:
        return importlib.metadata.version("samsar-bots")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "unknown"


def _show_version(asked: bool) -> None:
    if asked:
        typer.echo(f"samsar-bot {version()}")
        raise typer.Exit()


@app.callback()
def _main(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """samsar-bots: the Samsar assistant in Discord, Slack and a console."""


def _settings() -> Settings:
    """The environment's settings over those of `.env` in the working directory, if any."""
    try:
        settings = Settings(_env_file=ENV_FILE)
    except ValidationError as exc:
        raise _fail(settings_problems(exc)) from None
    except OSError as exc:  # .env is there but cannot be read
        raise _fail(f"Cannot read {ENV_FILE}: {exc.strerror or exc}.") from None
    logs.configure(settings.log_level, style=settings.log_format)
    return settings


def settings_problems(error: ValidationError) -> str:
    """One line naming each invalid setting and why, never its value (it may be secret)."""
    problems = []
    for problem in error.errors(include_input=False, include_url=False):
        name = "_".join(str(part) for part in problem["loc"]).upper()
        reason = problem["msg"].removeprefix("Value error, ")
        what = f"setting {name}" if name else "settings"  # several settings together
        problems.append(f"Invalid {what}: {reason}.")
    return " ".join(problems)


def _fail(message: str) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


def _execute(work: Coroutine[Any, Any, T], *, needs: str, again: str | None = None) -> T | None:
    """Run `work`; a missing setting or a Samsar error ends as one line (exit 2), Ctrl-C
    quietly. For a change on Samsar, `again` is the idempotency key it was sent with: when its
    outcome is unknown (interrupted, no answer), the operator is told how to run it again
    without it happening twice — never that it was done."""
    unsure = (
        f" It may or may not have been done: run the same command with --idempotency-key {again}"
        " to be sure it is done once."
        if again
        else ""
    )
    try:
        return asyncio.run(work)
    except MissingSettingError as exc:
        raise _fail(f"Set {exc} {needs}.") from None
    except SettingUnusable as exc:
        raise _fail(str(exc)) from None
    except AuthenticationFailed:
        raise _fail(texts.KEY_REFUSED) from None  # the operator runs the CLI: tell them what
    except (SamsarTimeout, SamsarUnreachable, UpstreamError) as exc:
        raise _fail(texts.describe(exc) + unsure) from None
    except BotError as exc:
        raise _fail(texts.describe(exc)) from None
    except KeyboardInterrupt:
        if not again:
            return None
        typer.secho("Interrupted." + unsure, err=True, fg=typer.colors.RED)
        raise typer.Exit(code=130) from None


@app.command()
def console(
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Run against an in-process offline Samsar.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Show log lines in the terminal too.")
    ] = False,
) -> None:
    """Chat with the assistant in this terminal (log lines go to DATA_DIR/console.log, or
    with --verbose to the terminal)."""
    settings = _settings()
    if not verbose:
        # The terminal is the chat: no log line in it unless asked for.
        log_file = settings.data_dir / "console.log"
        try:
            logs.configure(settings.log_level, file=log_file, style=settings.log_format)
        except OSError as exc:
            raise _fail(f"Check DATA_DIR: {log_file} cannot be written: {exc.strerror}.") from None

    async def main() -> None:
        async with wire(settings, sandbox=sandbox) as wired, workers_warming():
            bot = ConsoleBot(
                wired.service,
                user_name=settings.console_user,
                image_dir=settings.console_image_dir,
                grace=settings.shutdown_grace,
            )
            if sandbox:
                bot.say(f"(offline sandbox at {wired.samsar_base_url})")
            await bot.run()

    _execute(main(), needs="(or use --sandbox to run offline)")


@app.command()
def run() -> None:
    """Start every platform bot that has credentials, on one core, until SIGTERM or Ctrl-C."""
    settings = _settings()
    platforms = _platforms(settings)
    if not platforms:
        raise _fail(
            "No platform is configured. Set DISCORD_TOKEN for Discord, and/or SLACK_BOT_TOKEN "
            "with SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP) for Slack, or "
            "SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and SLACK_SIGNING_SECRET to serve every "
            "workspace that installs the app."
        )

    async def main() -> None:
        async with wire(settings) as wired, contextlib.AsyncExitStack() as stack:
            # Once the database answered: a refusal is the one line `_execute` prints.
            started: dict[str, object] = {
                "version": version(),
                "platforms": [name for name, _, _ in platforms],
                "database": wired.store.engine.dialect.name,
            }
            if settings.discord_token is not None:
                from bots.discord.shards import describe as discord_shards

                started["discord_shards"] = discord_shards(settings)
            log.info("samsar-bot starting", extra=started)
            await stack.enter_async_context(workers_warming())
            await _check_token_keys(settings, wired.store)
            if settings.health_port is not None:
                serving = health_server(
                    settings.health_host,
                    settings.health_port,
                    platforms=[name for name, _, _ in platforms],
                    database=wired.store.db.ping,
                )
                try:
                    await stack.enter_async_context(serving)
                except OSError as exc:  # taken, or not an address of this machine
                    where = f"{settings.health_host}:{settings.health_port}"
                    reason = f"cannot listen on {where}: {exc.strerror or exc}"
                    raise SettingUnusable("HEALTH_PORT and HEALTH_HOST", reason) from None
            await serve(
                [
                    Platform(name, partial(runner, wired), fatal)
                    for name, runner, fatal in platforms
                ],
                drain=wired.service.worker.drain,
                grace=settings.shutdown_grace,
            )

    try:
        _execute(main(), needs="to run the bots")
    except AllPlatformsFailed as exc:
        raise _fail(f"Every platform stopped for good ({exc}); see the log above.") from None


async def _check_token_keys(settings: Settings, store: SqlStore) -> None:
    """With TOKEN_ENCRYPTION_KEY, every stored Slack token must open: a wrong key is said at
    start, never found later as workspaces that seem not installed."""
    if settings.token_encryption_key is None or settings.slack_client_id is None:
        return
    records = store.slack_installations(settings.slack_client_id, settings.token_encryption_key)
    try:
        await records.check_keys()
    except WrongKey as exc:
        raise SettingUnusable("TOKEN_ENCRYPTION_KEY", str(exc)) from None


def _platforms(settings: Settings) -> list[tuple[str, Runner, Callable[[BaseException], bool]]]:
    """The bots that have credentials (imported only then: each platform library is heavy)."""
    platforms: list[tuple[str, Runner, Callable[[BaseException], bool]]] = []
    if settings.discord_token is not None:
        from bots.discord.bot import is_fatal as discord_fatal
        from bots.discord.bot import run_discord

        platforms.append(("discord", run_discord, discord_fatal))
    one_workspace = settings.slack_bot_token is not None and (
        settings.slack_app_token is not None or settings.slack_signing_secret is not None
    )
    if one_workspace or settings.slack_distributed:
        from bots.slack.transport import is_fatal as slack_fatal
        from bots.slack.transport import run_slack

        platforms.append(("slack", run_slack, slack_fatal))
    return platforms


@app.command("sandbox")
def sandbox_command(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8787,
    start_credits: Annotated[
        int | None,
        typer.Option(help="Credits of each new external user [default: SANDBOX_START_CREDITS]."),
    ] = None,
) -> None:
    """Run the offline Samsar sandbox alone."""
    from sandbox.app import SandboxConfig, serve

    settings = _settings()
    if start_credits is None:
        start_credits = settings.sandbox_start_credits
    typer.echo(f"Sandbox on http://127.0.0.1:{port}/v1 (API key: sandbox-key)")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(port, config=SandboxConfig(start_credits=start_credits)))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to DATABASE_URL (or the embedded SQLite file)."""
    settings = _settings()

    async def main() -> bool:
        async with opened_store(settings):  # migrated to head as it opens
            return True

    if _execute(main(), needs="to migrate"):
        typer.echo("Database is up to date.")


IdempotencyKey = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key",
        help="Reuse the key a run that ended without an answer printed: Samsar does it once.",
    ),
]


@prompt_app.command("set")
def prompt_set(
    account: Annotated[str, typer.Option("--account", help="The account-level prompt text.")],
    idempotency_key: IdempotencyKey = None,
) -> None:
    """Set the Samsar account-level prompt (applies to every member without a persona)."""
    _account_prompt(account, idempotency_key or uuid.uuid4().hex)
    typer.echo("Account prompt set.")


@prompt_app.command("clear")
def prompt_clear(
    account: Annotated[bool, typer.Option("--account", help="Clear the account prompt.")] = True,
    idempotency_key: IdempotencyKey = None,
) -> None:
    """Clear the Samsar account-level prompt."""
    _account_prompt(None, idempotency_key or uuid.uuid4().hex)
    typer.echo("Account prompt cleared.")


def _account_prompt(text: str | None, key: str) -> None:
    settings = _settings()

    async def main() -> None:
        async with wire(settings) as wired:
            await wired.service.admin.account_prompt_set("cli", text, event_key=key)

    _execute(main(), needs="to change the account prompt", again=key)


@credits_app.command("grant")
def credits_grant(
    member: Annotated[str, typer.Argument(help="discord:<id>, slack:<team>:<id>, console:<name>")],
    credits: Annotated[int, typer.Argument(min=1, help="Credits to grant.")],
    idempotency_key: IdempotencyKey = None,
) -> None:
    """Grant credits to a member (from the platform account to the member's balance)."""
    key = idempotency_key or uuid.uuid4().hex
    settings = _settings()
    try:
        user = member_from_key(member)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    operator = ChatUser("cli", "operator", display_name="operator", is_admin=True)

    async def grant() -> float | None:
        async with wire(settings) as wired:
            balance = await wired.service.admin.grant(operator, user, credits, event_key=key)
            return balance.remaining

    remaining = _execute(grant(), needs="to grant credits", again=key)
    typer.echo(f"Granted {credits} credits to {user.key}. {texts.balance_text(remaining)}")


@slack_app.command("workspaces")
def slack_workspaces() -> None:
    """List the workspaces the Slack app is installed in (tokens are never shown)."""
    settings = _settings()
    if settings.slack_client_id is None:
        raise _fail("Set SLACK_CLIENT_ID: the workspaces of that app are listed.")
    client_id = settings.slack_client_id

    async def main() -> list[Installed]:
        async with opened_store(settings) as store:
            return await store.slack_installations(client_id).installed()

    found = _execute(main(), needs="") or []
    if not found:
        typer.echo("No workspace has installed the app.")
    for item in found:
        where = f"org {item.enterprise_id}" if item.org_install else item.team_id
        within = (
            f" (org {item.enterprise_id})" if item.enterprise_id and not item.org_install else ""
        )
        typer.echo(
            f"{where}{within}  {item.name or '-'}  installed {item.installed_at:%Y-%m-%d %H:%M} UTC"
            f"  scopes: {item.scopes or '-'}"
        )


@slack_app.command("rotate-key")
def slack_rotate_key() -> None:
    """Encrypt every stored Slack token again with the first TOKEN_ENCRYPTION_KEY (the others
    still decrypt until this has run); tokens stored in clear get encrypted too."""
    settings = _settings()
    key = settings.token_encryption_key
    if key is None:
        raise _fail("Set TOKEN_ENCRYPTION_KEY (new key first, then the old ones) to rotate.")
    client_id = settings.slack_client_id or ""

    async def main() -> int:
        async with opened_store(settings) as store:
            try:
                return await store.slack_installations(client_id, key).reseal()
            except WrongKey as exc:
                raise SettingUnusable("TOKEN_ENCRYPTION_KEY", str(exc)) from None

    rows = _execute(main(), needs="")
    typer.echo(f"Re-encrypted the tokens of {rows or 0} installation rows with the first key.")


@slack_app.command("new-key")
def slack_new_key() -> None:
    """Print a fresh key for TOKEN_ENCRYPTION_KEY."""
    typer.echo(new_key())


def member_from_key(key: str) -> ChatUser:
    """The member a user key names: discord:<id>, slack:<team>:<id>, console:<name>."""
    platform, _, rest = key.partition(":")
    if platform == "slack" and rest.count(":") == 1:
        team, user_id = rest.split(":")
        return ChatUser("slack", user_id, workspace_id=team)
    if platform in ("discord", "console") and rest and ":" not in rest:
        return ChatUser(platform, rest)
    raise ValueError(
        f"{key!r} is not a member key: use discord:<id>, slack:<team>:<id> or console:<name>"
    )


def main() -> None:
    """Console-script entry point."""
    app()
