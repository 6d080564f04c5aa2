"""Delivery: acks before work, retries and duplicates run once, signatures, Slack 429s."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import event

from bots.slack.translate import message_key
from tests.e2e.slack import payloads
from tests.e2e.slack.conftest import Slack, running_slack
from tests.e2e.slack.fake_records import SIGNING_SECRET
from tests.e2e.slack.fake_slack import json_body, post_signed, sign
from tests.e2e.slack.payloads import ALICE, CHANNEL, DM


async def test_one_event_delivered_four_times_is_one_completion_and_one_charge(
    slack: Slack,
) -> None:
    at = payloads.ts()
    payload = payloads.mention("once please", at=at)
    for retry in range(4):  # the original and Slack's three retries
        await slack.event(payload, retry=retry)
    await slack.settle()
    assert len(slack.completions()) == 1 and slack.charged(ALICE) == 1
    assert len(slack.fake.thread(CHANNEL, at)) == 1


async def test_one_event_twice_at_once_is_one_completion(slack: Slack) -> None:
    at = payloads.ts()
    payload = payloads.mention("at once", at=at)
    await asyncio.gather(slack.event(payload), slack.event(payload))
    await slack.settle()
    assert len(slack.completions()) == 1 and slack.charged(ALICE) == 1
    assert len(slack.fake.thread(CHANNEL, at)) == 1


async def test_two_replicas_given_the_same_event_bill_it_once_through_the_ledger(
    slack_http: Slack, tmp_path: Path
) -> None:
    first = slack_http
    async with running_slack(
        tmp_path, "http", fake=first.fake, sandbox=first.sandbox, store=first.store
    ) as second:
        at = payloads.ts()
        payload = payloads.mention("slow and shared #slow=0.3", at=at)
        await asyncio.gather(first.event(payload), second.event(payload))
        await asyncio.gather(first.settle(), second.settle())
        await second.event(payload, retry=1)  # a retry reaching the replica that dropped it
        await second.settle()
    assert len(first.completions()) == 1 and first.charged(ALICE) == 1
    # The duplicate's placeholder was taken back: one answer in the thread.
    [answer] = first.fake.thread(CHANNEL, at)
    assert answer.section_text().startswith("Sandbox reply #1")


async def test_bad_or_stale_signatures_get_401_and_no_work(slack_http: Slack) -> None:
    url = f"{slack_http.http_url}/slack/events"
    body = json_body(payloads.mention("forged"))
    forged = sign(body, secret="not-the-secret")
    stale = sign(body, secret=SIGNING_SECRET, timestamp=int(time.time()) - 600)
    for headers in (forged, stale, {}):
        status, _ = await post_signed(url, body, content_type="application/json", headers=headers)
        assert status == 401
    await slack_http.settle()
    assert slack_http.sandbox.state.calls == [] and slack_http.fake.calls == []


async def test_the_request_url_challenge_is_answered(slack_http: Slack) -> None:
    body = json_body({"token": "t", "challenge": "c-123", "type": "url_verification"})
    status, text = await post_signed(
        f"{slack_http.http_url}/slack/events", body, content_type="application/json"
    )
    assert status == 200 and "c-123" in text


async def test_the_ack_comes_before_a_slow_turn_ends(slack: Slack) -> None:
    at = payloads.ts()
    started = time.monotonic()
    await slack.event(payloads.mention("take your time #slow=1.5", at=at))
    acked = time.monotonic() - started
    assert acked < 1.0 and slack.completions() == []
    await slack.settle()
    assert len(slack.completions()) == 1 and time.monotonic() - started >= 1.5
    [answer] = slack.fake.thread(CHANNEL, at)
    assert answer.versions[0] == "_Thinking…_" and "Thinking… 1 s" in " ".join(answer.versions)


async def test_a_slack_429_on_posting_is_retried_and_delivered_once(slack: Slack) -> None:
    # The answer replacing the placeholder is refused once.
    slack.fake.rate_limit("chat.update", when=lambda params: "Sandbox" in str(params.get("text")))
    at = payloads.ts()
    await slack.event(payloads.mention("through a rate limit", at=at))
    await slack.settle()
    updates = slack.fake.calls_to("chat.update")
    assert [c.status for c in updates if "Sandbox" in str(c.params.get("text"))] == [429, 200]
    [answer] = slack.fake.thread(CHANNEL, at)
    assert answer.section_text().startswith("Sandbox reply #1")
    assert len(slack.completions()) == 1 and slack.charged(ALICE) == 1


async def test_a_post_that_fails_twice_is_delivered_on_the_third_try(slack: Slack) -> None:
    # Slack has trouble of its own twice when the answer replaces the placeholder.
    slack.fake.fail("chat.update", 2, when=lambda params: "Sandbox" in str(params.get("text")))
    at = payloads.ts()
    await slack.event(payloads.mention("through trouble", at=at))
    await slack.settle()
    updates = slack.fake.calls_to("chat.update")
    tries = [c.ok for c in updates if "Sandbox" in str(c.params.get("text"))]
    assert tries == [False, False, True]
    [answer] = slack.fake.thread(CHANNEL, at)
    assert answer.section_text().startswith("Sandbox reply #1: through trouble")
    assert len(slack.completions()) == 1 and slack.charged(ALICE) == 1


async def test_a_member_over_their_rate_is_told_privately_and_nothing_runs(
    tmp_path: Path,
) -> None:
    async with running_slack(
        tmp_path, "socket", member_turns_per_minute=1, member_turn_burst=2
    ) as slack:
        roots = [payloads.ts() for _ in range(3)]
        for n, at in enumerate(roots):
            await slack.event(payloads.mention(f"question {n}", at=at))
        await slack.settle()
        assert [bool(slack.fake.thread(CHANNEL, at)) for at in roots] == [True, True, False]
        [note] = slack.fake.ephemerals
        assert note["user"] == ALICE and note["thread_ts"] == roots[2]
        assert "Slow down and try again in" in note["text"]
        assert len(slack.completions()) == 2 and slack.charged(ALICE) == 2


async def test_a_message_behind_a_running_answer_says_it_waits_then_is_answered(
    slack: Slack,
) -> None:
    root = payloads.ts()
    await slack.event(payloads.mention("slow one #slow=3", at=root))
    await slack.event(payloads.message("and then?", thread_ts=root))
    await slack.settle()
    first, second = slack.fake.thread(CHANNEL, root)
    assert first.section_text().startswith("Sandbox reply #1: slow one")
    assert second.versions[0] == "Waiting for the previous answer in this conversation…"
    assert "_Thinking…_" in second.versions  # taken over when it started
    assert second.section_text().startswith("Sandbox reply #2: and then?")
    assert len(slack.completions()) == 2


async def test_a_note_of_waiting_is_said_in_the_ledger_before_it_is_posted(slack: Slack) -> None:
    # So that a crash between posting it and keeping its ts leaves a mark the run looks for.
    marks: list[int] = []  # Web API calls made when the ledger was told a note is coming

    def note(_conn: object, _cursor: object, _sql: str, parameters: object, *_: object) -> None:
        values = parameters.values() if isinstance(parameters, dict) else parameters
        if any(isinstance(v, str) and '"pending": true' in v for v in values):
            marks.append(len(slack.fake.calls))

    engine = slack.store.db.engines[0]
    event.listen(engine, "before_cursor_execute", note)
    try:
        root = payloads.ts()
        await slack.event(payloads.mention("slow one #slow=2", at=root))
        await slack.event(payloads.message("and then?", thread_ts=root))
        await slack.settle()
    finally:
        event.remove(engine, "before_cursor_execute", note)
    [posted_at] = [
        n
        for n, call in enumerate(slack.fake.calls)
        if call.method == "chat.postMessage" and str(call.params.get("text")).startswith("Waiting")
    ]
    assert marks and marks[0] <= posted_at
    assert slack.fake.calls[posted_at].params["metadata"]["event_payload"]["turn_id"]


async def test_health_check_answers(slack_http: Slack) -> None:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{slack_http.http_url}/healthz") as response,
    ):
        assert response.status == 200 and await response.json() == {"ok": True}


async def test_a_duplicate_already_in_the_ledger_shows_no_placeholder(
    slack_http: Slack, tmp_path: Path
) -> None:
    first = slack_http
    async with running_slack(
        tmp_path, "http", fake=first.fake, sandbox=first.sandbox, store=first.store
    ) as second:
        at = payloads.ts()
        payload = payloads.mention("slow and shared #slow=1", at=at)
        await first.event(payload)
        # Core opens the member's session after taking the event into the ledger.
        await first.sandbox.state.wait_for_calls("utils/assistant_session")
        assert await first.store.turns.get(message_key(payloads.TEAM, CHANNEL, at)) is not None
        await second.event(payload)  # the same event, on the other replica, mid-turn
        await asyncio.gather(first.settle(), second.settle())
    posts = [c for c in first.fake.calls_to("chat.postMessage") if c.params.get("thread_ts") == at]
    assert len(posts) == 1 and first.fake.calls_to("chat.delete") == []
    [answer] = first.fake.thread(CHANNEL, at)
    assert answer.section_text().startswith("Sandbox reply #1")
    assert len(first.completions()) == 1 and first.charged(ALICE) == 1


async def test_a_redelivered_assistant_thread_start_greets_once(slack: Slack) -> None:
    thread_ts = payloads.ts()
    started = payloads.callback(
        {
            "type": "assistant_thread_started",
            "assistant_thread": {"user_id": ALICE, "channel_id": DM, "thread_ts": thread_ts},
        }
    )
    await slack.event(started)
    await slack.event(started, retry=1)
    await slack.settle()
    [greeting] = slack.fake.thread(DM, thread_ts)
    assert greeting.text.startswith("Hi!")
