"""The Slack app: bolt listeners that acknowledge at once and hand the work to a task."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack import buttons, texts
from bots.slack.clicks import Clicks
from bots.slack.commands import SlashCommands
from bots.slack.conversations import Conversations
from bots.slack.distribution import (
    ROTATE_MINUTES,
    Distribution,
    InstallationRecords,
    distribution,
)
from bots.slack.files import SLACK_FILE_ORIGINS, FileFetcher
from bots.slack.home import AppHome
from bots.slack.installation import Home, Installation
from bots.slack.intake import Intake
from bots.slack.members import Members
from bots.slack.progress import Place
from bots.slack.render import Renderer
from bots.slack.tasks import Background
from bots.slack.translate import (
    command_key,
    enterprise_of,
    is_member_message,
    member_files,
    member_team,
    mentions,
    message_origin,
    tenant_of,
    without_mention,
)
from bots.slack.turns import SlackTurns
from bots.slack.workspaces import (
    InstalledWorkspaces,
    OneWorkspace,
    Workspace,
    WorkspaceParts,
    Workspaces,
)
from core.conversation.service import ConversationService
from core.settings import Settings

log = logging.getLogger(__name__)

Body = dict[str, Any]
Work = Callable[[], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class SlackOptions:
    """Adapter knobs that are not operator settings."""

    progress_every: float = 3.0  # seconds between placeholder updates
    file_origins: tuple[str, ...] = SLACK_FILE_ORIGINS  # where member files may be fetched
    member_ttl: float = 600.0  # seconds a users.info answer is trusted
    file_timeout: float = 30.0  # seconds one member file may take to download


def slack_client(token: str | None, *, base_url: str | None = None) -> AsyncWebClient:
    """A Web API client that retries 429s after Retry-After, dropped connections and 5xx."""
    return AsyncWebClient(
        token=token,
        base_url=base_url or AsyncWebClient.BASE_URL,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )


class SlackBot:
    """The bolt `AsyncApp` with its listeners, and the tasks doing the work after each ack."""

    def __init__(
        self,
        service: ConversationService,
        settings: Settings,
        *,
        client: AsyncWebClient | None = None,
        options: SlackOptions = SlackOptions(),
        records: InstallationRecords | None = None,
    ) -> None:
        self._service = service
        self.tasks = Background()
        parts = workspace_parts(settings, options)
        self.distribution: Distribution | None = None
        if settings.slack_distributed:
            if records is None:
                raise ValueError("distribution keeps installations in the database: none given")
            # No token of its own: each request's comes from its workspace's installation.
            client = client or slack_client(None, base_url=settings.slack_api_url)
            self.distribution = distribution(settings, records, client)
            self.workspaces: Workspaces = InstalledWorkspaces(
                records.installations,
                partial(slack_client, base_url=str(client.base_url)),
                parts,
                app_id=records.app_id,
                rotator=self.distribution.rotator,
                rotate_minutes=ROTATE_MINUTES,
            )
        else:
            if client is None:
                if settings.slack_bot_token is None:
                    raise ValueError("SLACK_BOT_TOKEN is not set")
                client = slack_client(
                    settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
                )
            self.workspaces = OneWorkspace(parts(client, None))
        self.client = client
        self.conversations = Conversations(
            service, self.workspaces, max_files=settings.max_input_images
        )
        self.turns = SlackTurns(self.workspaces, progress_every=options.progress_every)
        self._commands = SlashCommands(service, self.conversations)
        self._home = AppHome(service, self.workspaces)
        secret = settings.slack_signing_secret
        # Listeners run before the acknowledgement: a member's message is recorded as a turn
        # first, so an acknowledged event is never lost, whatever happens to this process.
        dist = self.distribution
        self.app = AsyncApp(
            client=client,
            signing_secret=secret.get_secret_value() if secret else "",
            process_before_response=True,
            logger=_bolt_logger(),
            oauth_settings=dist.oauth if dist else None,
            installation_store=dist.records.installations if dist else None,
            authorize=dist.authorize if dist else None,  # type: ignore[arg-type]
        )
        if dist is not None:
            # app_uninstalled, tokens_revoked: the workspace's tokens are deleted from the store.
            self.app.enable_token_revocation_listeners()
        self.app.event("app_mention")(self._on_mention)
        self.app.event("message")(self._on_message)
        self.app.event("app_home_opened")(self._on_home)
        self.app.event("assistant_thread_started")(self._on_assistant_thread)
        self.app.event("assistant_thread_context_changed")(self._ignore)
        self.app.command("/samsar")(self._on_command)
        self._clicks = Clicks(service, self.conversations)
        self.app.action(buttons.ACTION)(self._on_action)
        self.app.action(buttons.FEEDBACK)(self._on_feedback)
        self.app.action(buttons.BUY)(self._on_link)
        self.app.view(buttons.EDIT_FORM)(self._on_form)
        self._prompts = suggested_prompts(settings.slack_suggested_prompts)
        self.intake = Intake(
            self.app, self.workspaces.app_id, secret.get_secret_value() if secret else None
        )
        service.worker.attach("slack", self.turns)

    async def _start(self, key: str, request: AsyncBoltRequest, work: Work) -> None:
        """Run `work` after the ack (work that records no turn: greetings, account commands),
        unless this process or another replica already took the same event (noted in the
        ledger before the ack, as a turn is)."""
        if not await self._service.first_delivery(key, "slack"):
            retry = request.headers.get("x-slack-retry-num", ["0"])[0]
            log.info("redelivery skipped", extra={"event_key": key, "retry_num": retry})
            return
        self.tasks.spawn(work(), event_key=key)

    async def _on_mention(
        self, body: Body, context: AsyncBoltContext, request: AsyncBoltRequest
    ) -> None:
        event = _event(body)
        if not is_member_message(event):
            return
        origin = message_origin(body, event)
        text = without_mention(str(event.get("text") or ""), context.bot_user_id)
        await self.conversations.converse(origin, text, member_files(event))

    async def _on_message(
        self, body: Body, context: AsyncBoltContext, request: AsyncBoltRequest
    ) -> None:
        event = _event(body)
        if not is_member_message(event):
            return
        text = str(event.get("text") or "")
        direct = event.get("channel_type") == "im"
        if not direct and (not event.get("thread_ts") or mentions(text, context.bot_user_id)):
            return  # top-level channel chatter, or a mention (the app_mention event has it)
        origin = message_origin(body, event)
        text = without_mention(text, context.bot_user_id)
        # In channels only threads that are already bot conversations are followed.
        await self.conversations.converse(
            origin, text, member_files(event), only_existing=not direct
        )

    async def _on_home(self, body: Body) -> None:
        event = _event(body)
        user = event.get("user")
        if event.get("tab") != "home" or not isinstance(user, str) or not user:
            return
        team, enterprise = member_team(body), enterprise_of(body)
        home = self._home.publish(tenant_of(body), team, user, enterprise)
        self.tasks.spawn(home, event_key=f"home:{user}")

    async def _on_assistant_thread(self, body: Body, request: AsyncBoltRequest) -> None:
        thread = _event(body).get("assistant_thread")
        if not isinstance(thread, dict):
            return
        channel, thread_ts = thread.get("channel_id"), thread.get("thread_ts")
        if not isinstance(channel, str) or not isinstance(thread_ts, str):
            return
        if not channel or not thread_ts:
            return
        self.conversations.assistant_thread(channel, thread_ts)
        place = Place(channel, thread_ts, "", assistant=True)
        tenant = tenant_of(body)

        async def greet() -> None:
            if renderer := await self.conversations.renderer(tenant):
                await renderer.say(place, texts.GREETING)
                await renderer.suggest(place, self._prompts)

        # One greeting per thread, retries or not.
        await self._start(f"slack:assistant:{channel}:{thread_ts}", request, greet)

    async def _on_action(self, ack: AsyncAck, body: Body) -> None:
        # Recorded (or refused privately) before the ack, as a message is.
        await self._clicks.guarded(self._clicks.action, body)
        await ack()

    async def _on_feedback(self, ack: AsyncAck, body: Body) -> None:
        await self._clicks.guarded(self._clicks.feedback, body)
        await ack()

    async def _on_link(self, ack: AsyncAck) -> None:
        """A link button (Buy credits): Slack opened the URL; the click only needs its ack."""
        await ack()

    async def _on_form(self, ack: AsyncAck, body: Body) -> None:
        await self._clicks.guarded(self._clicks.form, body)
        await ack()

    async def _ignore(self) -> None:
        """Events the app subscribes to without acting on them."""

    async def _on_command(
        self, ack: AsyncAck, body: Body, respond: AsyncRespond, request: AsyncBoltRequest
    ) -> None:
        key = command_key(str(body.get("trigger_id") or ""))
        if self._commands.starts_turn(body):
            # The thread's root is posted and the turn recorded before the ack; the root only
            # once, though the command reach this replica or another twice (a retrying proxy).
            if await self._service.first_delivery(f"{key}:root", "slack"):
                await self._commands.run(body, respond)
        else:
            await self._start(key, request, lambda: self._commands.run(body, respond))
        await ack()

    async def close(self, grace: float = 10.0) -> None:
        """Let the work after acks (App Home, greetings, account commands) finish for `grace`
        seconds, then stop it. Turns are the worker's: recorded, they outlive this."""
        try:
            async with asyncio.timeout(grace):
                await self.tasks.drain()
        except TimeoutError:
            log.warning("slack shutdown cut work short", extra={"pending": self.tasks.pending})
        await self.tasks.cancel()


def suggested_prompts(entries: tuple[str, ...]) -> list[dict[str, str]]:
    """SLACK_SUGGESTED_PROMPTS as Slack takes them: "Title: message" (or just the message,
    titled by its beginning), at most four."""
    prompts = []
    for entry in entries[:4]:
        title, colon, message = entry.partition(":")
        if not colon or not message.strip():
            title, message = entry[:30].rstrip(), entry
        prompts.append({"title": title.strip()[:75], "message": message.strip()})
    return prompts


def workspace_parts(settings: Settings, options: SlackOptions) -> WorkspaceParts:
    """How a workspace's members, files and posts are built around its client."""

    def parts(client: AsyncWebClient, home: Home | None) -> Workspace:
        installation = Installation(client, home=home)
        return Workspace(
            client=client,
            installation=installation,
            members=Members(client, installation, ttl=options.member_ttl),
            files=FileFetcher(
                client,
                max_bytes=settings.max_input_image_bytes,
                origins=options.file_origins,
                timeout=options.file_timeout,
            ),
            renderer=Renderer(client),
        )

    return parts


def _event(body: Body) -> dict[str, Any]:
    """The event of an Events API body ({} when there is none)."""
    event = body.get("event")
    return event if isinstance(event, dict) else {}


def _bolt_logger() -> logging.Logger:
    """bolt's logger; it starts at WARNING unless configured, because at INFO bolt prints the
    whole body of a request it refused (member text must not reach INFO logs)."""
    logger = logging.getLogger("bots.slack.bolt")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)
    return logger


def build_slack_app(
    service: ConversationService, settings: Settings, *, client: AsyncWebClient | None = None
) -> AsyncApp:
    """The bolt app wired to the conversation service (use `SlackBot` to reach its tasks)."""
    return SlackBot(service, settings, client=client).app
