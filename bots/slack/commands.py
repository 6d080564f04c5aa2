"""`/samsar <subcommand>`: conversations start in the channel, everything private is ephemeral."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_bolt.context.respond.async_respond import AsyncRespond

from bots import texts as shared_texts
from bots.image_flags import split_image_flags
from bots.slack import texts
from bots.slack.conversations import Conversations
from bots.slack.mrkdwn import escape
from bots.slack.progress import WEB_API_ERRORS, error_code
from bots.slack.translate import Origin, command_origin
from core.conversation.prompts import EffectivePrompt
from core.conversation.service import ConversationService
from core.errors import BotError, InputRejected
from core.models import ChatUser, PromptScope

log = logging.getLogger(__name__)

Payload = dict[str, Any]
Handler = Callable[[Payload, str, AsyncRespond], Awaitable[None]]


class SlashCommands:
    """Runs one `/samsar` invocation (after the ack)."""

    def __init__(
        self,
        service: ConversationService,
        conversations: Conversations,
    ) -> None:
        self._service = service
        self._conversations = conversations
        self._handlers: dict[str, Handler] = {
            "ask": self._ask,
            "imagine": self._imagine,
            "credits": self._credits,
            "buy": self._buy,
            "studio": self._studio,
            "persona": self._persona,
            "prompt": self._prompt,
            "reset": self._reset,
            "help": self._help,
        }

    def starts_turn(self, payload: Payload) -> bool:
        """Whether the subcommand records a turn (ask, imagine)."""
        name = str(payload.get("text") or "").strip().partition(" ")[0].lower()
        return name in ("ask", "imagine")

    async def run(self, payload: Payload, respond: AsyncRespond) -> None:
        """Dispatch the subcommand; every refusal or failure is a private sentence."""
        name, _, rest = str(payload.get("text") or "").strip().partition(" ")
        handler = self._handlers.get(name.lower() or "help")
        try:
            if handler is None:
                await _private(respond, texts.unknown_command(name))
                return
            await handler(payload, rest.strip(), respond)
        except BotError as exc:
            await _private(respond, escape(shared_texts.describe(exc, texts.COMMANDS)))
        except Exception:  # the top of a command: log it, and never leave the member unanswered
            log.exception("command failed", extra={"command": name})
            await _private(respond, shared_texts.UNEXPECTED)

    async def _user(self, payload: Payload) -> ChatUser:
        origin = command_origin(payload)
        workspace = await self._conversations.workspaces.find(origin.tenant)
        if workspace is None:  # uninstalled meanwhile: the member as the payload names them
            return origin.plain_user()
        members = workspace.members
        return await members.chat_user(origin.user_team, origin.user_id, origin.enterprise_id)

    async def _start(
        self, payload: Payload, verb: str, text: str, respond: AsyncRespond
    ) -> Origin | None:
        """Post the visible root of a new conversation; its thread is where the answer goes.
        The member's words are escaped there like every post: they cannot ping or link."""
        if not text:
            raise InputRejected(InputRejected.EMPTY)
        origin = command_origin(payload)
        renderer = await self._conversations.renderer(origin.tenant)
        if renderer is None:
            return None
        try:
            root = await renderer.root(origin.channel, texts.asked(origin.user_id, verb, text))
        except WEB_API_ERRORS as exc:
            log.info("command root not posted", extra={"error": error_code(exc)})
            await _private(respond, texts.not_in_channel())
            return None
        return command_origin(payload, root)

    async def _ask(self, payload: Payload, rest: str, respond: AsyncRespond) -> None:
        origin = await self._start(payload, "asks", rest, respond)
        if origin is not None:
            await self._conversations.converse(origin, rest)

    async def _imagine(self, payload: Payload, rest: str, respond: AsyncRespond) -> None:
        choice, prompt = split_image_flags(rest, texts.USAGE_IMAGINE)
        origin = await self._start(payload, "imagines", prompt, respond)
        if origin is not None:
            await self._conversations.converse(origin, prompt, imagine=True, options=choice)

    async def _credits(self, payload: Payload, rest: str, respond: AsyncRespond) -> None:
        balance = await self._service.credits(await self._user(payload))
        await _private(respond, shared_texts.balance_text(balance.remaining))

    async def _buy(self, payload: Payload, rest: str, respond: AsyncRespond) -> None:
        if not rest.isdigit():
            raise InputRejected(InputRejected.USAGE, detail=texts.USAGE_BUY)
        user = await self._user(payload)
        link = await self._service.buy(user, int(rest), event_key=command_origin(payload).key)
        await _private(respond, texts.checkout(link.credits, link.url))

    async def _studio(self, payload: Payload, rest: str, respond: AsyncRespond) -> None:
        user = await self._user(payload)
        link = await self._service.studio_link(user, event_key=command_origin(payload).key)
        await _private(respond, texts.studio(link.url))

    async def _persona(self, payload: Payload, rest: str, respond: AsyncRespond) -> None:
        action, _, text = rest.partition(" ")
        user = await self._user(payload)
        key = command_origin(payload).key
        if action == "set" and text.strip():
            await self._service.persona_set(user, text, event_key=key)
            await _private(respond, texts.PERSONA_SET)
        elif action == "clear":
            await self._service.persona_set(user, None, event_key=key)
            await _private(respond, texts.PERSONA_CLEARED)
        elif action in ("", "show"):
            await _private(respond, texts.persona(await self._service.persona_show(user)))
        else:
            await _private(respond, texts.USAGE_PERSONA)

    async def _prompt(self, payload: Payload, rest: str, respond: AsyncRespond) -> None:
        action, _, tail = rest.partition(" ")
        scope_word, _, text = tail.strip().partition(" ")
        if scope_word.lower() in ("workspace", "channel"):
            scope = PromptScope(scope_word.lower())
        else:
            scope, text = PromptScope.WORKSPACE, tail.strip()
        user = await self._user(payload)
        where = command_origin(payload).thread
        admin = self._service.admin
        if action == "set" and text.strip():
            await admin.prompt_set(user, where, scope, text)
            await _private(respond, texts.prompt_set(scope))
        elif action == "clear":
            removed = await admin.prompt_clear(user, where, scope)
            await _private(respond, texts.prompt_cleared(scope, removed))
        elif action in ("", "show"):
            shown = await admin.prompt_show(user, where, None)
            text_now = shown.text if isinstance(shown, EffectivePrompt) else None
            await _private(respond, texts.prompt_shown(text_now))
        else:
            await _private(respond, texts.USAGE_PROMPT)

    async def _reset(self, payload: Payload, rest: str, respond: AsyncRespond) -> None:
        user = await self._user(payload)
        latest = await self._service.latest_thread(user, command_origin(payload).thread)
        done = latest is not None and await self._service.reset(user, latest)
        await _private(respond, texts.RESET_DONE if done else texts.RESET_NOTHING)

    async def _help(self, payload: Payload, rest: str, respond: AsyncRespond) -> None:
        await _private(respond, texts.HELP)


async def _private(respond: AsyncRespond | None, text: str) -> None:
    if respond is None:  # a command without a response_url (the intake refuses those)
        log.warning("no way to answer the command privately")
        return
    try:
        await respond(text=text, response_type="ephemeral", replace_original=False)
    except (aiohttp.ClientError, TimeoutError) as exc:  # the last resort: it only logs
        log.error("ephemeral response failed", extra={"error": type(exc).__name__})
