"""Small rules of the edges: the log budget, bounded member fields, one Slack member key."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bots.log_budget import LogBudget
from bots.member_fields import NAME_CHARS, bounded_name, bounded_url
from bots.slack.translate import command_origin, member_team, message_origin

TEAM, OTHER_TEAM, ORG, USER = "T0HOME", "T0OTHER", "E0ORG", "U0ALICE"


def test_garbage_lines_stay_within_the_budget_and_say_what_was_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    budget = LogBudget(logging.getLogger("edge.test"), per_minute=3, clock=lambda: now[0])
    for _ in range(10):
        budget.warn("garbage", {"reason": "x"})
    assert len(caplog.records) == 3
    now[0] = 61.0
    budget.warn("garbage", {"reason": "x"})
    assert len(caplog.records) == 4 and caplog.records[-1].left_out == 7


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Ada", "Ada"),
        ("  Ada \n\t Lovelace ", "Ada Lovelace"),
        ("A\u202eda\x00\ud800", "Ada"),  # bidi override, NUL, lone surrogate
        ("👩‍💻 dev", "👩‍💻 dev"),  # the joiner of an emoji stays
        ("", None),
        ("\x00\x01", None),
        (42, None),
        (None, None),
    ],
)
def test_names_are_one_clean_line(raw: object, expected: str | None) -> None:
    assert bounded_name(raw) == expected


def test_a_name_of_any_length_is_cut_to_the_bound() -> None:
    cut = bounded_name("x" * 100_000)
    assert cut is not None and len(cut) == NAME_CHARS and cut.endswith("…")
    cut.encode("utf-8")


@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        ("https://cdn.discordapp.com/avatars/1/a.png", True),
        ("http://127.0.0.1:9/a.png", True),
        ("https://x.test/" + "a" * 5000, False),
        ("javascript:alert(1)", False),
        ("https://x.test/a b", False),
        ("https://x.test/é", False),
        (["https://x.test"], False),
    ],
)
def test_avatar_links_are_plain_web_links_of_sane_length(raw: object, ok: bool) -> None:
    assert (bounded_url(raw) == raw) is ok


def _message(
    user_team: str | None, enterprise: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    body: dict[str, Any] = {"team_id": TEAM, "enterprise_id": enterprise}
    event = {"user": USER, "channel": "C0GEN", "ts": "1690000000.000001", "team": TEAM}
    if user_team:
        event["user_team"] = user_team
    return body, event


def _command(enterprise: str | None = None) -> dict[str, str]:
    form = {"team_id": TEAM, "user_id": USER, "channel_id": "C0GEN", "trigger_id": "1.2.a"}
    if enterprise:
        form["enterprise_id"] = enterprise
    return form


def test_a_member_has_one_key_in_messages_commands_and_app_home() -> None:
    body, event = _message(TEAM)
    from_message = message_origin(body, event).plain_user().key
    from_command = command_origin(_command()).plain_user().key
    home = member_team({"team_id": TEAM, "event": {"user": USER}})
    assert from_message == from_command == f"slack:{home}:{USER}" == f"slack:{TEAM}:{USER}"


def test_in_a_grid_org_the_org_keys_the_member_whichever_workspace_they_write_from() -> None:
    body, event = _message(OTHER_TEAM, enterprise=ORG)
    assert message_origin(body, event).plain_user().key == f"slack:{ORG}:{USER}"
    assert command_origin(_command(enterprise=ORG)).plain_user().key == f"slack:{ORG}:{USER}"


def test_a_slack_connect_member_is_keyed_by_their_own_team() -> None:
    body, event = _message(OTHER_TEAM)
    assert message_origin(body, event).plain_user().key == f"slack:{OTHER_TEAM}:{USER}"
