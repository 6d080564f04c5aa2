"""Discord user installs: the member's commands are installable to their own account and
usable in servers and DMs the bot is not in; there the answer is the interaction's own."""

from __future__ import annotations

from tests.e2e.discord.conftest import ALICE, Harness, option

EVERYWHERE = ("chat", "imagine", "credits", "buy", "studio", "persona")


async def test_member_commands_install_to_accounts_and_work_everywhere(harness: Harness) -> None:
    [synced] = harness.fake.commands.values()
    by_name = {command["name"]: command for command in synced}
    for name in EVERYWHERE:
        assert by_name[name]["integration_types"] == [0, 1], name
        assert by_name[name]["contexts"] == [0, 1, 2], name
    # Server-only: the admin prompt never reaches a member's own install or a DM.
    assert by_name["prompt"]["integration_types"] == [0]
    assert by_name["prompt"]["contexts"] == [0]


async def test_a_user_installed_chat_is_answered_through_the_interaction(
    harness: Harness,
) -> None:
    fake = harness.fake
    _, elsewhere = fake.add_guild(joined=False)  # a server the bot was never added to
    asked = await harness.slash(
        "chat",
        option("prompt", "hello from my own install"),
        user_install=True,
        channel_id=elsewhere,
    )
    answer = await harness.answer(asked, when=lambda m: "hello from my own install" in m.content)
    await harness.settle()
    assert not fake.threads()  # no thread: the bot is not in this server
    refused = [r for r in fake.requests if r.status == 403]
    assert refused == []  # nothing tried as the bot where it has no access
    assert answer.payload["channel_id"] == str(elsewhere)
    assert harness.charged(ALICE) == 1
