"""The App Home tab: the member's credits, persona, and how to use the bot."""

from __future__ import annotations

import logging

from bots import texts as shared_texts
from bots.slack import texts
from bots.slack.progress import WEB_API_ERRORS, error_code
from bots.slack.render import Block, context, section
from bots.slack.tenant import Tenant
from bots.slack.workspaces import Workspaces
from core.conversation.service import ConversationService
from core.errors import BotError

log = logging.getLogger(__name__)


class AppHome:
    """Publishes the Home tab each time a member opens it."""

    def __init__(self, service: ConversationService, workspaces: Workspaces) -> None:
        self._service = service
        self._workspaces = workspaces

    async def publish(
        self, tenant: Tenant, team_id: str, user_id: str, enterprise_id: str | None
    ) -> None:
        """Read the member's figures and publish their Home view."""
        workspace = await self._workspaces.find(tenant)
        if workspace is None:
            log.info("home not published: not installed", extra={"team": str(tenant)})
            return
        user = await workspace.members.chat_user(team_id, user_id, enterprise_id)
        try:
            balance = await self._service.credits(user)
            credits = texts.home_credits(balance.remaining)
        except BotError as exc:
            credits = f"*Credits:* {shared_texts.describe(exc, texts.COMMANDS)}"
        persona = await self._service.persona_show(user)
        blocks: list[Block] = [
            {"type": "header", "text": {"type": "plain_text", "text": "Samsar"}},
            section(credits),
            section(texts.home_persona(persona)),
            {"type": "divider"},
            section(texts.HELP),
            context("Answers and images are billed to your own Samsar credits."),
        ]
        try:
            await workspace.client.views_publish(
                user_id=user_id, view={"type": "home", "blocks": blocks}
            )
        except WEB_API_ERRORS as exc:
            log.warning("home not published", extra={"error": error_code(exc)})
