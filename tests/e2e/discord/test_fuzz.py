"""Seeded, bounded fuzzing of the Discord gateway through the real discord.py bot: interactions
and messages built like Discord's, then mangled (missing or odd fields, stale commands, wrong
option types, attachments elsewhere). The properties: every interaction that can be answered
is answered within Discord's 3 s, the connection never drops, no traceback, nothing recorded
for what is off-shape or does not fit, nothing fetched from outside the CDN, and a normal
command still answered afterwards.

Every case has its own seed, printed on failure. Re-run one with
`DISCORD_FUZZ_SEED=<seed> DISCORD_FUZZ_CASES=1 pytest tests/e2e/discord/test_fuzz.py`.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.discord import payloads as p
from tests.e2e.discord.conftest import (
    ALICE,
    ATTACHMENT,
    BOB,
    INTEGER,
    Harness,
    option,
    running_harness,
    sub,
)
from tests.e2e.discord.fake_interactions import ACK_WINDOW, AUTOCOMPLETE, COMPONENT, MODAL_SUBMIT
from tests.fakes import PNG_1PX
from tests.ledger import turn_rows

SEED = int(os.environ.get("DISCORD_FUZZ_SEED", "2024"))
CASES = int(os.environ.get("DISCORD_FUZZ_CASES", "300"))

Payload = dict[str, Any]
Change = Callable[[Payload], None]

ODD: list[Any] = [None, "", "abc", -1, 12.5, True, [], {}, ["1"], {"id": "1"}, "x" * 5_000]
TEXTS = ["hello", "שלום 👨‍👩‍👧 \u202eevil", "<@&1> @everyone", "x" * 1_500, "  "]


@dataclass
class Case:
    """One fuzzed dispatch and what Discord's contract says about it."""

    event: str  # "INTERACTION_CREATE" or "MESSAGE_CREATE"
    payload: Payload
    answerable: bool = True  # an interaction with a usable id and token
    may_record: bool = True  # False: off-shape or not fitting, no turn may come of it
    what: str = ""


def _set(path: str, value: Any) -> Change:
    def change(payload: Payload) -> None:
        *parents, last = path.split(".")
        node: Any = payload
        for step in parents:
            node = node[int(step)] if isinstance(node, list) else node[step]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


def _drop(path: str) -> Change:
    def change(payload: Payload) -> None:
        *parents, last = path.split(".")
        node: Any = payload
        for step in parents:
            node = node[step]
        node.pop(last, None)

    return change


def _odd(rng: random.Random, path: str) -> Change:
    value = copy.deepcopy(rng.choice([v for v in ODD if v is not None]))
    return _set(path, value)


def command(rng: random.Random, harness: Harness) -> tuple[Payload, str]:
    """A slash command as Discord sends it today, for the commands the bot has."""
    fake = harness.fake
    who = copy.deepcopy(rng.choice([ALICE, BOB]))
    roll = rng.randrange(8)
    text = rng.choice(TEXTS)
    if roll == 0:
        picture = fake.add_attachment(PNG_1PX, "cat.png")
        options = [option("prompt", text), option("image", picture["id"], kind=ATTACHMENT)]
        resolved = {"attachments": {picture["id"]: picture}}
        return fake.new_interaction("chat", options, who=who, resolved=resolved), "chat+image"
    if roll == 1:
        return fake.new_interaction("chat", [option("prompt", text)], who=who), "chat"
    if roll == 2:
        quality = option("quality", rng.choice(["low", "auto"]))
        payload = fake.new_interaction("imagine", [option("prompt", text), quality], who=who)
        return payload, "imagine"
    if roll == 3:
        credits = option("credits", rng.randrange(1, 500), kind=INTEGER)
        return fake.new_interaction("buy", [credits], who=who), "buy"
    if roll == 4:
        return fake.new_interaction(
            "persona", [sub("set", option("text", text))], who=who
        ), "persona"
    if roll == 5:
        focused = {**option("prompt", text[:20]), "focused": True}
        return fake.new_interaction(
            "imagine", [focused], who=who, kind=AUTOCOMPLETE
        ), "autocomplete"
    if roll == 6:
        kind = rng.choice([COMPONENT, MODAL_SUBMIT])
        # Old ids, and ours naming a turn the ledger does not hold (a button of a pruned turn).
        turn = f"{rng.randrange(16**32):032x}"
        ours = [f"samsar:{action}:{turn}" for action in ("regen", "hd", "edit", "retry")]
        data: Payload = {
            "custom_id": rng.choice(["regen:1", "x" * 100, *ours]),
            "component_type": 2,
        }
        if kind == COMPONENT and rng.random() < 0.3:
            data = {"custom_id": f"samsar:size:{turn}", "component_type": 3, "values": ["auto"]}
        if kind == MODAL_SUBMIT:
            form = rng.choice(["form:1", f"samsar:editform:{turn}"])
            row = {"type": 4, "custom_id": "instruction", "value": text[:100]}
            data = {"custom_id": form, "components": [{"type": 1, "components": [row]}]}
        payload = fake.new_interaction("", [], who=who, kind=kind, data=data)
        if kind == COMPONENT:
            payload["message"] = p.message(p.snowflake(), fake.channel_id, fake.bot, "old")
        return payload, "component" if kind == COMPONENT else "form"
    name = rng.choice(["credits", "studio", "reset"])
    return fake.new_interaction(name, [], who=who), name


STALE: list[tuple[str, Change]] = [
    ("unknown command", _set("data.name", "oldcommand")),
    (
        "option of another type",
        lambda d: d["data"]["options"] and _set("data.options.0.type", 5)(d),
    ),
    (
        "option value of another type",
        lambda d: d["data"]["options"] and _set("data.options.0.value", [1])(d),
    ),
    ("unknown option", lambda d: d["data"].setdefault("options", []).append(option("zz", "1"))),
    ("options dropped", _set("data.options", [])),
]
OFF_SHAPE = [
    "member",
    "member.user.id",
    "member.user",
    "attachment_size_limit",
    "version",
    "application_id",
    "data",
    "type",
    "channel",
    "app_permissions",
    "guild_id",
]
UNANSWERABLE = ["id", "token"]


def interaction_case(rng: random.Random, harness: Harness) -> Case:
    payload, what = command(rng, harness)
    roll = rng.random()
    if roll < 0.4:
        return Case("INTERACTION_CREATE", payload, what=what)
    is_command = payload["type"] == 2
    if roll < 0.6 and is_command and what not in ("persona",):
        label, change = rng.choice(STALE)
        change(payload)
        return Case("INTERACTION_CREATE", payload, may_record=False, what=f"{what}: {label}")
    if roll < 0.92:
        field = rng.choice(OFF_SHAPE)
        if rng.random() < 0.3:
            _drop(field)(payload)
            if field in ("channel", "app_permissions"):  # optional: still in shape
                return Case("INTERACTION_CREATE", payload, what=f"{what}: {field} dropped")
        else:
            _odd(rng, field)(payload)
        return Case("INTERACTION_CREATE", payload, may_record=False, what=f"{what}: {field}")
    field = rng.choice(UNANSWERABLE)
    _set(field, rng.choice([None, "", "a/b", "x" * 2_000, "abc"]))(payload)
    return Case("INTERACTION_CREATE", payload, False, False, f"{what}: {field}")


def message_case(rng: random.Random, harness: Harness) -> Case:
    fake = harness.fake
    who = copy.deepcopy(rng.choice([ALICE, BOB]))
    attachments = []
    if rng.random() < 0.3:
        picture = fake.add_attachment(PNG_1PX, rng.choice(["cat.png", "notes.txt"]))
        if rng.random() < 0.3:  # in shape, but somewhere else than the CDN
            port = fake.base_url.rsplit(":", 1)[1]
            picture["url"] = picture["url"].replace(f"127.0.0.1:{port}", f"localhost:{port}")
        attachments.append(picture)
    payload = p.message(
        p.snowflake(),
        fake.channel_id,
        who,
        f"<@{fake.bot['id']}> {rng.choice(TEXTS)}",
        guild_id=fake.guild_id,
        attachments=attachments,
        mentions=[fake.bot],
    )
    if rng.random() < 0.4:
        return Case("MESSAGE_CREATE", payload, what="in shape")
    field = rng.choice(
        [
            "content",
            "author.id",
            "author",
            "author.username",
            "id",
            "channel_id",
            "type",
            "mentions",
            "attachments",
            "guild_id",
        ]
        + (
            ["attachments.0.size", "attachments.0.url", "attachments.0.filename"] * 2
            if attachments
            else []
        )
    )
    if field == "content" and rng.random() < 0.5:
        _set("content", rng.choice([5, None, "x" * 5_000]))(payload)
    elif rng.random() < 0.3 and "." not in field:
        _drop(field)(payload)
        if field == "guild_id":  # a DM then: still a message of a member, in shape
            return Case("MESSAGE_CREATE", payload, what="guild_id dropped")
    else:
        # A text field takes any short string: only other types, or far too long, are odd.
        text = field in ("author.username", "attachments.0.filename")
        value = copy.deepcopy(
            rng.choice([v for v in ODD if v is not None and not (text and v in ("", "abc"))])
        )
        _set(field, value)(payload)
        if value == [] and field in ("mentions", "attachments"):
            return Case("MESSAGE_CREATE", payload, what=f"{field} emptied")  # still in shape
    return Case("MESSAGE_CREATE", payload, may_record=False, what=field)


async def answered(harness: Harness, case: Case) -> str | None:
    """What went wrong with an interaction's answer (None: answered in time)."""
    if not case.answerable:
        return None
    state = harness.fake.interactions[int(case.payload["id"])]
    try:
        await harness.fake.wait_for(lambda: state.acknowledged_at, ACK_WINDOW + 0.5, "an answer")
    except AssertionError:
        return "never answered"
    assert state.dispatched_at is not None and state.acknowledged_at is not None
    if state.acknowledged_at - state.dispatched_at > ACK_WINDOW:
        return "answered too late"
    return None


async def _fuzz(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    failures: list[str] = []
    not_recordable: dict[str, str] = {}  # event key → case
    mix = {"in shape": 0, "off-shape or not fitting": 0}
    for number in range(CASES):
        seed = SEED + number
        rng = random.Random(seed)
        case = interaction_case(rng, harness) if rng.random() < 0.5 else message_case(rng, harness)
        mix["in shape" if case.may_record else "off-shape or not fitting"] += 1
        label = f"seed {seed} ({case.event} {case.what})"
        traces = sum(1 for r in caplog.records if r.exc_info)
        if case.event == "INTERACTION_CREATE":
            state = (
                harness.fake.interactions.get(int(case.payload["id"])) if case.answerable else None
            )
            if state is not None:
                await harness.fake.dispatch_interaction(case.payload)
            else:
                await harness.fake.gateway.dispatch(case.event, case.payload)
            if problem := await answered(harness, case):
                failures.append(f"{label}: {problem}")
            key = f"discord:interaction:{case.payload.get('id')}"
        else:
            await harness.fake.gateway.dispatch(case.event, case.payload)
            key = f"discord:message:{case.payload.get('id')}"
        if not case.may_record:
            not_recordable[key] = label
        if sum(1 for r in caplog.records if r.exc_info) != traces:
            failures.append(f"{label}: a traceback was logged")
    await harness.settle(within=60)
    recorded = {row["event_key"] for row in await turn_rows(harness.store.engine)}
    failures += [
        f"{label}: recorded as a turn" for key, label in not_recordable.items() if key in recorded
    ]
    cdn = harness.fake.base_url.removeprefix("http://")
    if foreign := [host for host in harness.fake.cdn_hosts if host != cdn]:
        failures.append(f"attachments fetched through other hosts: {foreign}")
    fake = harness.fake
    if len(fake.gateway.identifies) != 1 or fake.gateway.resumes:
        failures.append("the gateway connection dropped")
    assert not failures, "\n".join(failures[:25])
    if CASES >= 100:  # the mix stays meaningful: both kinds often, and real turns among them
        assert min(mix.values()) >= CASES // 5 and len(recorded) >= CASES // 10, (mix, recorded)
    final = await harness.slash("chat", option("prompt", "still there?"))
    answer = await harness.answer(final)
    assert answer.content.startswith("Sandbox reply")


async def test_fuzzed_gateway_dispatches_are_answered_and_never_crash_or_bill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # Three hundred payloads from a few members: far over a member's rate, not the point here.
    async with running_harness(
        tmp_path, monkeypatch, start_credits=100_000, member_turns_per_minute=0
    ) as harness:
        async with asyncio.timeout(60):  # a bot that lost its connection fails, never hangs
            await _fuzz(harness, caplog)
