"""The sandbox Samsar service over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from PIL import Image, ImageChops, ImageStat

from sandbox.app import RunningSandbox, SandboxConfig, running_sandbox

ANN = {"provider": "discord", "external_user_id": "ann", "display_name": "Ann"}
BOB = {"provider": "discord", "external_user_id": "bob"}
COMPLETION = "external_users/assistant/completion"
IMAGE_TOOL = {"type": "image_generation", "size": "320x200", "format": "png"}
FORCED = {"type": "image_generation"}


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with running_sandbox(SandboxConfig(max_body_bytes=256 * 1024)) as running:
        yield running


@pytest.fixture
async def client(sandbox: RunningSandbox) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {sandbox.api_key}"}
    async with httpx.AsyncClient(
        base_url=sandbox.base_url, headers=headers, trust_env=False, timeout=10
    ) as http:
        yield http


async def bootstrap(client: httpx.AsyncClient, user: dict[str, str] = ANN) -> dict[str, Any]:
    response = await client.post("external_users/session", json={"external_user": user})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def new_session(client: httpx.AsyncClient, user: dict[str, str] = ANN) -> str:
    response = await client.post(
        "external_users/utils/assistant_session", json={"external_user": user}
    )
    assert response.status_code == 200, response.text
    session_id: str = response.json()["session_id"]
    return session_id


async def complete(
    client: httpx.AsyncClient,
    session_id: str,
    content: Any,
    user: dict[str, str] = ANN,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> httpx.Response:
    body = {"session_id": session_id, "input": content, "external_user": user, **extra}
    return await client.post(COMPLETION, json=body, headers=headers)


def image_of(response: httpx.Response) -> Image.Image:
    calls = [i for i in response.json()["output"] if i["type"] == "image_generation_call"]
    assert len(calls) == 1, response.text
    image = Image.open(io.BytesIO(base64.b64decode(calls[0]["result"])))
    image.load()
    return image


def distance(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean)


async def ready(client: httpx.AsyncClient, user: dict[str, str] = ANN) -> str:
    await bootstrap(client, user)
    return await new_session(client, user)


async def test_api_key_is_required(sandbox: RunningSandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.base_url, trust_env=False) as anonymous:
        missing = await anonymous.post("external_users/session", json={"external_user": ANN})
        wrong = await anonymous.post(
            "external_users/session",
            json={"external_user": ANN},
            headers={"Authorization": "Bearer nope"},
        )
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.json()["message"]
        assert response.headers["x-request-id"].startswith("req_")
    assert sandbox.state.users == {}


async def test_unknown_route_and_wrong_method_are_json_404(client: httpx.AsyncClient) -> None:
    unknown = await client.post("external_users/nothing", json={})
    wrong_method = await client.get("external_users/session")
    outside = await client.get("/elsewhere")
    for response in (unknown, wrong_method, outside):
        assert response.status_code == 404
        assert "not found" in response.json()["message"].lower()


@pytest.mark.parametrize(
    "user",
    [None, "ann", {}, {"external_user_id": "ann"}, {"provider": " ", "external_user_id": "a"},
     {"provider": "discord"}, {"provider": "discord", "external_user_id": 42}],
)  # fmt: skip
async def test_malformed_external_user_is_400(client: httpx.AsyncClient, user: object) -> None:
    response = await client.post("external_users/session", json={"external_user": user})
    assert response.status_code == 400
    assert "external" in response.json()["message"].lower()


async def test_unique_key_stands_for_external_user_id(
    client: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    body = await bootstrap(client, {"provider": "slack", "unique_key": "T1:U9"})
    assert body["external_user"]["external_user_id"] == "T1:U9"
    assert sandbox.state.balance("slack", "T1:U9") == 100


async def test_session_refresh_keeps_credits_and_updates_profile(
    client: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    first = await bootstrap(client)
    assert first["remainingCredits"] == 100 and first["external_api_key"]
    sandbox.state.set_credits("discord", "ann", 40)
    again = await bootstrap(client, {**ANN, "display_name": "Ann B."})
    assert again["remainingCredits"] == 40
    assert again["external_user"]["display_name"] == "Ann B."


async def test_unbootstrapped_user_gets_404(client: httpx.AsyncClient) -> None:
    session = await client.post(
        "external_users/utils/assistant_session", json={"external_user": BOB}
    )
    assert session.status_code == 404
    assert "external user not found" in session.json()["message"]
    session_id = await ready(client)
    response = await complete(client, session_id, "hi", user=BOB)
    assert response.status_code == 404
    assert "x-credits-remaining" not in response.headers


async def test_session_ownership(client: httpx.AsyncClient, sandbox: RunningSandbox) -> None:
    ann_session = await ready(client)
    await bootstrap(client, BOB)
    stolen = await complete(client, ann_session, "hi", user=BOB)
    assert stolen.status_code == 403
    missing = await complete(client, "sess_missing", "hi")
    assert missing.status_code == 404
    assert sandbox.state.balance("discord", "bob") == 100
    assert sandbox.state.sessions[ann_session].history == []


async def test_completion_is_deterministic(client: httpx.AsyncClient) -> None:
    first, second = await ready(client), await new_session(client)
    one = await complete(client, first, "Hello there")
    other = await complete(client, second, "Hello there")
    follow_up = await complete(client, first, "And again")
    assert one.json()["output_text"] == other.json()["output_text"]
    assert one.json()["output_text"] == "Sandbox reply #1: Hello there"
    # Its memory at work: the second answer recalls the first question of the session.
    assert (
        follow_up.json()["output_text"]
        == "Sandbox reply #2: And again (you asked before: “Hello there”)"
    )
    body = one.json()
    assert body["object"] == "response" and body["status"] == "completed"
    assert body["id"].startswith("resp_")
    message = body["output"][-1]
    assert message["type"] == "message"
    assert message["content"][0]["text"] == body["output_text"]


async def test_prompts_and_developer_messages_reach_the_session(
    client: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    session_id = await ready(client)
    account = await client.post("assistant/set_system_prompt", json={"system_prompt": "Be a cat"})
    assert account.json() == {"system_prompt": "Be a cat", "model": "sandbox-assistant"}
    via_account = await complete(client, session_id, "hi")
    assert "(persona: Be a cat)" in via_account.json()["output_text"]
    own = await client.post(
        "external_users/assistant/set_system_prompt",
        json={"system_prompt": "Be a dog", "external_user": ANN},
    )
    assert own.json()["system_prompt"] == "Be a dog"
    messages = [
        {"role": "developer", "content": "Server rules: no spoilers"},
        {"role": "user", "content": [{"type": "input_text", "text": "hello"}]},
    ]
    answer = (await complete(client, session_id, messages)).json()["output_text"]
    assert "(persona: Be a dog)" in answer
    assert "(developer: Server rules: no spoilers)" in answer
    history = sandbox.state.sessions[session_id].history
    assert [h.role for h in history] == ["user", "assistant", "developer", "user", "assistant"]
    assert history[2].text == "Server rules: no spoilers"
    cleared = await client.post(
        "external_users/assistant/set_system_prompt",
        json={"system_prompt": None, "external_user": ANN},
    )
    assert cleared.json()["system_prompt"] is None
    assert sandbox.state.users[("discord", "ann")].system_prompt is None


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    "content",
    [
        "",
        [],
        [{"role": "robot", "content": "hi"}],
        [{"role": "user", "content": [{"type": "input_text"}]}],
        [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/a.png"}]}],
        [{"role": "user", "content": [{"type": "input_image", "image_url": data_url(b"hello")}]}],
        [{"role": "user", "content": [{"type": "video", "url": "x"}]}],
    ],
)
async def test_malformed_input_is_400(
    client: httpx.AsyncClient, sandbox: RunningSandbox, content: Any
) -> None:
    session_id = await ready(client)
    response = await complete(client, session_id, content)
    assert response.status_code == 400
    assert response.json()["message"]
    assert response.headers["x-credits-charged"] == "0"
    assert sandbox.state.balance("discord", "ann") == 100


async def test_input_image_is_accepted(client: httpx.AsyncClient) -> None:
    session_id = await ready(client)
    content = [
        {"type": "input_text", "text": "what is this?"},
        {"type": "input_image", "image_url": data_url(png_bytes())},
    ]
    response = await complete(client, session_id, [{"role": "user", "content": content}])
    assert response.status_code == 200, response.text
    assert "(received 1 image)" in response.json()["output_text"]


async def test_forced_image_is_a_png_of_the_requested_size(
    client: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    session_id = await ready(client)
    response = await complete(
        client, session_id, "a red fox", tools=[IMAGE_TOOL], tool_choice=FORCED
    )
    assert response.status_code == 200, response.text
    image = image_of(response)
    assert (image.format, image.size) == ("PNG", (320, 200))
    kinds = [item["type"] for item in response.json()["output"]]
    assert kinds == ["image_generation_call", "message"]
    assert response.headers["x-credits-charged"] == "6"
    assert response.headers["x-credits-remaining"] == "94"


@pytest.mark.parametrize(("fmt", "pil_name"), [("jpeg", "JPEG"), ("webp", "WEBP")])
async def test_image_formats(client: httpx.AsyncClient, fmt: str, pil_name: str) -> None:
    session_id = await ready(client)
    tool = {"type": "image_generation", "size": "auto", "format": fmt}
    response = await complete(client, session_id, "a boat", tools=[tool], tool_choice=FORCED)
    image = image_of(response)
    assert (image.format, image.size) == (pil_name, (1024, 1024))


async def test_auto_tool_choice_draws_only_when_asked(client: httpx.AsyncClient) -> None:
    session_id = await ready(client)
    chat = await complete(
        client, session_id, "how are you?", tools=[IMAGE_TOOL], tool_choice="auto"
    )
    asked = await complete(client, session_id, "Draw a lighthouse", tools=[IMAGE_TOOL])
    no_tools = await complete(client, session_id, "draw a lighthouse")
    assert [i["type"] for i in chat.json()["output"]] == ["message"]
    assert image_of(asked).size == (320, 200)
    assert [i["type"] for i in no_tools.json()["output"]] == ["message"]
    assert no_tools.headers["x-credits-charged"] == "1"


@pytest.mark.parametrize(
    ("tools", "choice"),
    [
        ([{"type": "image_generation", "size": "32x32"}], FORCED),
        ([{"type": "image_generation", "size": "5000x100"}], FORCED),
        ([{"type": "image_generation", "size": "big"}], FORCED),
        ([{"type": "image_generation", "format": "bmp"}], FORCED),
        (None, FORCED),
        ([{"type": "web_search"}], FORCED),
    ],
)
async def test_bad_image_tool_is_400(client: httpx.AsyncClient, tools: Any, choice: Any) -> None:
    session_id = await ready(client)
    extra = {"tools": tools} if tools is not None else {}
    response = await complete(client, session_id, "a cat", tool_choice=choice, **extra)
    assert response.status_code == 400
    assert response.json()["message"]


async def test_follow_up_image_edits_the_previous_one(client: httpx.AsyncClient) -> None:
    session_id, other = await ready(client), await new_session(client)
    tools: dict[str, Any] = {"tools": [IMAGE_TOOL], "tool_choice": FORCED}
    first = image_of(await complete(client, session_id, "a green hill", **tools))
    edit = await complete(client, session_id, "make it snowy", **tools)
    edited = image_of(edit)
    fresh = image_of(await complete(client, other, "make it snowy", **tools))
    assert distance(edited, first) > 0 and distance(edited, fresh) > 0
    assert distance(edited, first) < 0.7 * distance(fresh, first)
    assert "edited" in edit.json()["output_text"]
    assert edit.json()["output"][0]["revised_prompt"].startswith("Edited the previous image")


async def test_noise_directive_makes_a_large_image(client: httpx.AsyncClient) -> None:
    session_id = await ready(client)
    tool = {"type": "image_generation", "size": "256x256", "format": "png"}
    plain = await complete(client, session_id, "a plain thing", tools=[tool], tool_choice=FORCED)
    noisy = await complete(client, session_id, "#noise a thing", tools=[tool], tool_choice=FORCED)
    noisy_size = len(base64.b64decode(noisy.json()["output"][0]["result"]))
    plain_size = len(base64.b64decode(plain.json()["output"][0]["result"]))
    assert noisy_size > 256 * 256 * 3 * 0.9 > plain_size


async def test_credits_are_charged_then_exhausted_with_402(
    client: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    session_id = await ready(client)
    sandbox.state.set_credits("discord", "ann", 6)
    ok = await complete(client, session_id, "one")
    assert (ok.headers["x-credits-charged"], ok.headers["x-credits-remaining"]) == ("1", "5")
    picture = await complete(client, session_id, "two", tools=[IMAGE_TOOL], tool_choice=FORCED)
    assert picture.status_code == 402
    assert picture.json()["message"].startswith("Insufficient credits: 5 remaining")
    assert (picture.headers["x-credits-charged"], picture.headers["x-credits-remaining"]) == (
        "0",
        "5",
    )
    for _ in range(5):
        assert (await complete(client, session_id, "text")).status_code == 200
    broke = await client.post(
        COMPLETION,
        json={"session_id": session_id, "input": "#slow=30 more", "external_user": ANN},
        timeout=3,
    )
    assert broke.status_code == 402  # at once: the work is not done
    assert sandbox.state.balance("discord", "ann") == 0
    assert sandbox.state.charged_total("discord", "ann") == 6
    assert sandbox.state.sessions[session_id].turns == 6


async def test_credit_routes(client: httpx.AsyncClient, sandbox: RunningSandbox) -> None:
    await bootstrap(client)
    unknown = await client.get("external_users/credits", params=BOB)
    assert unknown.status_code == 404
    granted = await client.post(
        "external_users/credits/grant", json={"external_user": ANN, "input": {"credits": 25}}
    )
    assert granted.json()["creditsGranted"] == 25 and granted.json()["remainingCredits"] == 125
    recharge = await client.post(
        "external_users/credits/recharge", json={"external_user": ANN, "input": {"credits": 500}}
    )
    body = recharge.json()
    assert (body["credits"], body["amountUsd"], body["amountCents"]) == (500, 5.0, 500)
    assert body["url"].startswith(f"{sandbox.root_url}/checkout/")
    balance = await client.get("external_users/credits", params=ANN)
    assert balance.json()["remainingCredits"] == 125 and balance.json()["lastTopUp"] is None
    paid = await client.post(body["url"] + "/pay")
    assert paid.status_code == 200
    assert sandbox.state.balance("discord", "ann") == 625
    bad = await client.post(
        "external_users/credits/grant", json={"external_user": ANN, "input": {"credits": -3}}
    )
    assert bad.status_code == 400


async def test_login_token(client: httpx.AsyncClient, sandbox: RunningSandbox) -> None:
    await bootstrap(client)
    response = await client.post(
        "external_users/create_login_token", json={"external_user": ANN, "redirect": "/library"}
    )
    body = response.json()
    assert body["expiresInSeconds"] == 600 and body["loginToken"]
    assert body["loginUrl"].startswith(f"{sandbox.root_url}/login?token={body['loginToken']}")


async def test_previous_response_id_must_come_from_the_session(client: httpx.AsyncClient) -> None:
    session_id, other = await ready(client), await new_session(client)
    first = (await complete(client, session_id, "one")).json()["id"]
    foreign = (await complete(client, other, "one")).json()["id"]
    chained = await complete(client, session_id, "two", previous_response_id=first)
    assert chained.status_code == 200
    crossed = await complete(client, session_id, "three", previous_response_id=foreign)
    assert crossed.status_code == 400


async def test_idempotent_replay_charges_once(
    client: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    session_id = await ready(client)
    key = {"Idempotency-Key": "turn-1"}
    first = await complete(client, session_id, "hello", headers=key)
    replay = await complete(client, session_id, "hello", headers=key)
    assert replay.status_code == first.status_code == 200
    assert replay.content == first.content
    for header in ("x-credits-charged", "x-credits-remaining", "x-request-id"):
        assert replay.headers[header] == first.headers[header]
    assert replay.headers["x-idempotent-replayed"] == "true"
    assert sandbox.state.balance("discord", "ann") == 99
    calls = sandbox.state.calls_to(COMPLETION)
    assert [(c.idempotency_key, c.credits_charged, c.replayed) for c in calls] == [
        ("turn-1", 1, False),
        ("turn-1", 0, True),
    ]
    assert calls[0].external_user == ("discord", "ann")


async def test_concurrent_requests_with_one_key_run_once(
    client: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    session_id = await ready(client)
    key = {"Idempotency-Key": "turn-x"}
    one, two = await asyncio.gather(
        complete(client, session_id, "#slow=0.3 hello", headers=key),
        complete(client, session_id, "#slow=0.3 hello", headers=key),
    )
    assert one.content == two.content
    assert sandbox.state.balance("discord", "ann") == 99
    assert sandbox.state.sessions[session_id].turns == 1


async def test_reused_key_with_other_body_is_400(client: httpx.AsyncClient) -> None:
    session_id = await ready(client)
    key = {"Idempotency-Key": "turn-2"}
    assert (await complete(client, session_id, "hello", headers=key)).status_code == 200
    other = await complete(client, session_id, "goodbye", headers=key)
    assert other.status_code == 400
    assert other.json()["message"] == "Idempotency-Key reused with a different body"


async def test_fault_status_then_recovery(
    client: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    session_id = await ready(client)
    sandbox.state.inject("assistant/completion", status=429)
    sandbox.state.inject("assistant/completion", status=503)
    limited = await complete(client, session_id, "hi", headers={"Idempotency-Key": "k"})
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "1")
    assert limited.json()["message"]
    failed = await complete(client, session_id, "hi", headers={"Idempotency-Key": "k"})
    assert failed.status_code == 503 and failed.headers["x-credits-charged"] == "0"
    assert failed.headers["x-credits-remaining"] == "100"
    ok = await complete(client, session_id, "hi", headers={"Idempotency-Key": "k"})
    assert ok.status_code == 200 and "x-idempotent-replayed" not in ok.headers
    assert [c.fault for c in sandbox.state.calls_to(COMPLETION)] == [True, True, False]
    assert sandbox.state.balance("discord", "ann") == 99


async def test_fault_malformed_body(client: httpx.AsyncClient, sandbox: RunningSandbox) -> None:
    session_id = await ready(client)
    sandbox.state.inject("completion", malformed=True)
    response = await complete(client, session_id, "hi")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert sandbox.state.balance("discord", "ann") == 100


async def test_fault_delay_times_out_and_retry_replays(
    client: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    session_id = await ready(client)
    sandbox.state.inject("completion", delay=0.5)
    key = {"Idempotency-Key": "slow-1"}
    with pytest.raises(httpx.ReadTimeout):
        await client.post(
            COMPLETION,
            json={"session_id": session_id, "input": "hi", "external_user": ANN},
            headers=key,
            timeout=0.1,
        )
    (late,) = await sandbox.state.wait_for_calls(COMPLETION, within=5)
    assert (late.status, late.fault, late.credits_charged) == (200, True, 1)
    retry = await complete(client, session_id, "hi", headers=key)
    assert retry.headers["x-idempotent-replayed"] == "true"
    assert sandbox.state.balance("discord", "ann") == 99


async def test_fault_drop(client: httpx.AsyncClient, sandbox: RunningSandbox) -> None:
    session_id = await ready(client)
    sandbox.state.inject("completion", drop=True)
    with pytest.raises(httpx.RemoteProtocolError):
        await complete(client, session_id, "hi")
    assert sandbox.state.calls_to(COMPLETION)[0].status == 0
    assert (await complete(client, session_id, "hi")).status_code == 200


@pytest.mark.parametrize("length", [40, 1990, 5000])
async def test_long_directive(client: httpx.AsyncClient, length: int) -> None:
    session_id = await ready(client)
    text = (await complete(client, session_id, f"tell me #long={length}")).json()["output_text"]
    assert len(text) == length
    if length >= 1000:
        first, last = text.index("```"), text.rindex("```")
        assert 0.2 * length < first < last < 0.8 * length
        assert text.count("```") == 2 and "\n\n" in text[:first]


async def test_body_limits(client: httpx.AsyncClient, sandbox: RunningSandbox) -> None:
    session_id = await ready(client)
    big = "x" * (300 * 1024)
    too_large = await complete(client, session_id, big)
    assert too_large.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(300):
            yield b" " * 1024

    chunked = await client.post(COMPLETION, content=chunks())
    assert chunked.status_code == 413
    assert "exceeds" in chunked.json()["message"] and chunked.headers["x-request-id"]
    not_json = await client.post(COMPLETION, content=b"not json{")
    assert not_json.status_code == 400
    array = await client.post(COMPLETION, json=[1, 2])
    assert array.status_code == 400
    assert sandbox.state.balance("discord", "ann") == 100
