"""The sandbox HTTP server: auth, routing, limits, faults, idempotency and credit headers."""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sandbox import routes
from sandbox.assistant import completion
from sandbox.routes import Call, Handler, parse_identity
from sandbox.state import (
    ApiError,
    CallRecord,
    Fault,
    IdempotencyEntry,
    SandboxConfig,
    SandboxState,
    StoredResponse,
    UserKey,
    new_id,
)

__all__ = ["RunningSandbox", "SandboxConfig", "build_app", "running_sandbox", "serve"]

logger = logging.getLogger(__name__)

STATE_KEY = web.AppKey("sandbox_state", SandboxState)
ROUTES: dict[tuple[str, str], Handler] = {
    ("POST", "external_users/session"): routes.external_session,
    ("POST", "external_users/utils/assistant_session"): routes.assistant_session,
    ("POST", "external_users/assistant/completion"): completion,
    ("POST", "external_users/assistant/set_system_prompt"): routes.external_system_prompt,
    ("GET", "external_users/credits"): routes.credits_balance,
    ("POST", "external_users/credits/recharge"): routes.credits_recharge,
    ("POST", "external_users/credits/grant"): routes.credits_grant,
    ("POST", "external_users/create_login_token"): routes.login_token,
    ("POST", "assistant/set_system_prompt"): routes.account_system_prompt,
}


@dataclass
class _Context:
    """What one call did, for headers and the call log."""

    route: str
    method: str
    request_id: str
    idempotency_key: str | None
    user_key: UserKey | None = None
    charged: int = 0
    replayed: bool = False
    fault: bool = False


@dataclass(frozen=True)
class RunningSandbox:
    """A started sandbox: `base_url` ends with /v1."""

    base_url: str
    root_url: str
    port: int
    state: SandboxState
    api_key: str


def _answer(
    state: SandboxState,
    ctx: _Context,
    status: int,
    payload: dict[str, Any] | str | bytes,
    extra: dict[str, str] | None = None,
    *,
    content_type: str | None = None,
) -> StoredResponse:
    """A response with the request id and the credit headers."""
    if isinstance(payload, dict):
        body, kind = json.dumps(payload).encode(), "application/json; charset=utf-8"
    else:
        raw = payload.encode() if isinstance(payload, str) else payload
        body, kind = raw, "text/plain; charset=utf-8"
    kind = content_type or kind
    headers = {"Content-Type": kind, "x-request-id": ctx.request_id}
    headers["x-credits-charged"] = str(ctx.charged)
    user = state.users.get(ctx.user_key) if ctx.user_key else None
    if user is not None:
        headers["x-credits-remaining"] = str(user.credits)
    return StoredResponse(status, body, {**headers, **(extra or {})}, ctx.user_key)


async def _read_body(request: web.Request, limit: int) -> dict[str, Any]:
    """The JSON object body of a POST (empty for GET); 413 over `limit`, 400 if not JSON."""
    if request.method == "GET":
        return {}
    too_large = ApiError(413, f"Request body exceeds {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:  # a chunked body without Content-Length
        raise too_large from exc
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "Request body must be valid JSON") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return data


def _named_user(request: web.Request, body: dict[str, Any]) -> UserKey | None:
    """The external user a request names, if it names a valid one."""
    raw = dict(request.query) if request.method == "GET" else body.get("external_user")
    with suppress(ApiError):
        return parse_identity(raw)[0]
    return None


async def _faulted(state: SandboxState, ctx: _Context, fault: Fault) -> StoredResponse | None:
    """Apply a fault: the answer to send instead (status 0 = drop), or None to carry on."""
    ctx.fault = True
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.drop:
        return StoredResponse(0, b"", {}, ctx.user_key)
    if fault.malformed:
        truncated = b'{"id": "resp_trunc'
        return _answer(state, ctx, 200, truncated, content_type="application/json")
    if fault.status is None and fault.body is None:
        return None
    status = fault.status or 200
    body = fault.body if fault.body is not None else {"message": f"Sandbox fault: HTTP {status}"}
    return _answer(state, ctx, status, body, {"Retry-After": "1"} if status == 429 else None)


async def _run(state: SandboxState, ctx: _Context, call: Call, handler: Handler) -> StoredResponse:
    """Run a route handler; every outcome becomes a response."""
    try:
        status, payload = 200, await handler(call)
    except ApiError as exc:
        status, payload = exc.status, {"message": exc.message}
    except Exception:
        logger.exception("sandbox: handler for %s failed", ctx.route)
        status, payload = 500, {"message": "Internal sandbox error"}
    ctx.user_key, ctx.charged = call.user_key or ctx.user_key, call.charged
    return _answer(state, ctx, status, payload)


def _fingerprint(request: web.Request, body: dict[str, Any]) -> str:
    """A hash of what makes two requests the same: method, query and body."""
    query = sorted(request.query.items())
    canonical = json.dumps([request.method, query, body], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def _idempotent(
    state: SandboxState, ctx: _Context, call: Call, handler: Handler, fingerprint: str
) -> StoredResponse:
    """Run once per (route, Idempotency-Key); replay the stored answer to repeats."""
    slot = (ctx.route, ctx.idempotency_key or "")
    while (entry := state.idempotency.get(slot)) is not None:
        if entry.fingerprint != fingerprint:
            raise ApiError(400, "Idempotency-Key reused with a different body")
        await entry.done.wait()
        if entry.response is not None:
            ctx.replayed, ctx.user_key = True, entry.response.external_user
            stored = entry.response
            return StoredResponse(
                stored.status,
                stored.body,
                {**stored.headers, "x-idempotent-replayed": "true"},
                stored.external_user,
            )
    entry = IdempotencyEntry(fingerprint)
    state.idempotency[slot] = entry
    try:
        answer = await _run(state, ctx, call, handler)
    finally:
        entry.done.set()
        state.idempotency.pop(slot, None)
    if answer.status < 500 and answer.status != 429:
        entry.response = answer
        state.keep_response(slot, entry)
    return answer


async def _respond(request: web.Request, state: SandboxState, ctx: _Context) -> StoredResponse:
    """Everything between receiving a /v1 request and the answer."""
    try:
        if request.headers.get("Authorization") != f"Bearer {state.config.api_key}":
            raise ApiError(401, "Invalid or missing API key (Authorization: Bearer <key>)")
        handler = ROUTES.get((request.method, ctx.route))
        if handler is None:
            raise ApiError(404, f"Route not found: {request.method} /v1/{ctx.route}")
        body = await _read_body(request, state.config.max_body_bytes)
        ctx.user_key = _named_user(request, body)
        fault = state.take_fault(ctx.route)
        if fault is not None and (faulted := await _faulted(state, ctx, fault)) is not None:
            return faulted
        call = Call(state, body, request.query, f"{request.scheme}://{request.host}")
        if ctx.idempotency_key:
            fingerprint = _fingerprint(request, body)
            return await _idempotent(state, ctx, call, handler, fingerprint)
        return await _run(state, ctx, call, handler)
    except ApiError as exc:
        return _answer(state, ctx, exc.status, {"message": exc.message})


async def _dispatch(request: web.Request) -> web.StreamResponse:
    """The single /v1 entry point: answer, log the call, send."""
    state = request.app[STATE_KEY]
    ctx = _Context(
        route=request.match_info["tail"].strip("/"),
        method=request.method,
        request_id=new_id("req"),
        idempotency_key=request.headers.get("Idempotency-Key") or None,
    )
    answer = await _respond(request, state, ctx)
    state.record(
        CallRecord(
            ctx.route,
            ctx.method,
            ctx.user_key,
            ctx.idempotency_key,
            answer.status,
            0 if ctx.replayed else ctx.charged,
            ctx.replayed,
            ctx.fault,
            ctx.request_id,
        )
    )
    logger.info("sandbox %s /v1/%s -> %s", ctx.method, ctx.route, answer.status or "dropped")
    if answer.status == 0:
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)
    return web.Response(status=answer.status, body=answer.body, headers=answer.headers)


def _page(title: str, inner: str, status: int = 200) -> web.Response:
    """A minimal HTML page."""
    text = f"<!doctype html><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>{inner}"
    return web.Response(status=status, text=text, content_type="text/html")


async def _checkout_page(request: web.Request) -> web.Response:
    """GET /checkout/{id}: the fake payment page of a recharge."""
    checkout = request.app[STATE_KEY].checkouts.get(request.match_info["checkout_id"])
    if checkout is None:
        return _page("Unknown checkout", "", 404)
    state = (
        "paid" if checkout.paid else f"{checkout.credits} credits for ${checkout.credits / 100:.2f}"
    )
    action = f"/checkout/{checkout.checkout_id}/pay"
    form = f'<form method="post" action="{action}"><button>Pay</button></form>'
    return _page("Sandbox checkout", f"<p>{html.escape(state)}</p>{'' if checkout.paid else form}")


async def _checkout_pay(request: web.Request) -> web.Response:
    """POST /checkout/{id}/pay: complete the payment, adding the credits once."""
    state = request.app[STATE_KEY]
    checkout_id = request.match_info["checkout_id"]
    if checkout_id not in state.checkouts:
        return _page("Unknown checkout", "", 404)
    balance = state.complete_checkout(checkout_id)
    return _page("Payment complete", f"<p>Balance: {balance} credits</p>")


async def _login_page(request: web.Request) -> web.Response:
    """GET /login?token=…: where a login URL leads."""
    return _page("Sandbox login", f"<p>Token {html.escape(request.query.get('token', ''))}</p>")


async def _not_found(request: web.Request) -> web.Response:
    """Any other path: a JSON 404."""
    message = f"Route not found: {request.method} {request.path}"
    return web.json_response({"message": message}, status=404)


def build_app(state: SandboxState) -> web.Application:
    """The aiohttp application serving the sandbox API under /v1."""
    app = web.Application(client_max_size=state.config.max_body_bytes + 1)
    app[STATE_KEY] = state
    app.router.add_route("*", "/v1/{tail:.*}", _dispatch)
    app.router.add_get("/checkout/{checkout_id}", _checkout_page)
    app.router.add_post("/checkout/{checkout_id}/pay", _checkout_pay)
    app.router.add_get("/login", _login_page)
    app.router.add_route("*", "/{tail:.*}", _not_found)
    return app


@asynccontextmanager
async def running_sandbox(
    config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSandbox]:
    """Start the sandbox (a random port by default) and stop it on exit."""
    state = SandboxState(config)
    runner = web.AppRunner(build_app(state), shutdown_timeout=0.5, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = int(runner.addresses[0][1])
        root = f"http://{host}:{bound_port}"
        yield RunningSandbox(f"{root}/v1", root, bound_port, state, state.config.api_key)
    finally:
        await runner.cleanup()


async def serve(port: int, host: str = "127.0.0.1", config: SandboxConfig | None = None) -> None:
    """Run the sandbox on host:port until cancelled."""
    async with running_sandbox(config, host=host, port=port) as sandbox:
        logger.info("Samsar sandbox on %s (API key %r)", sandbox.base_url, sandbox.api_key)
        await asyncio.Event().wait()
