"""Pydantic models of the Samsar request and response bodies (samsar-js 0.48.48): the boundary."""

from __future__ import annotations

import asyncio
import base64
import math
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import quote_plus

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)
from pydantic_core import to_json

from core.errors import MalformedResponse
from core.models import CompletionRequest, ExternalIdentity, InputImage
from core.samsar.images import data_url, data_url_start

# --- requests ------------------------------------------------------------------------

_QUERY_FIELDS = (
    "provider",
    "external_user_id",
    "external_company_id",
    "username",
    "display_name",
    "avatar_url",
)


class WireBody(BaseModel):
    """A request body; None fields are left out (as JSON.stringify drops `undefined`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    keep_null: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_none(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None or k in self.keep_null}

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON, keys in field order: the bytes JSON.stringify would send."""
        return self.model_dump_json().encode("utf-8")


class ExternalUser(WireBody):
    """`external_user` as normalizeExternalUserIdentity builds it (key order as the reference)."""

    provider: str
    external_user_id: str
    external_company_id: str | None = None
    username: str | None = None
    display_name: str | None = None
    avatar_url: str | None = None
    metadata: dict[str, str] | None = None

    @classmethod
    def from_identity(cls, identity: ExternalIdentity) -> ExternalUser:
        """Trim the ids, drop empty optional strings; ValueError when provider or id is blank."""
        provider = identity.provider.strip()
        user_id = identity.external_user_id.strip()
        if not provider or not user_id:
            raise ValueError("external user needs a provider and an external_user_id")
        return cls(
            provider=provider,
            external_user_id=user_id,
            external_company_id=identity.external_company_id or None,
            username=identity.username or None,
            display_name=identity.display_name or None,
            avatar_url=identity.avatar_url or None,
            metadata=dict(identity.metadata) if identity.metadata is not None else None,
        )

    def query_string(self) -> str:
        """buildExternalUserQuery as URLSearchParams writes it (no metadata, no absent values)."""

        def enc(text: str) -> str:  # form encoding: space as '+', '*' kept, '~' escaped
            return quote_plus(text, safe="*").replace("~", "%7E")

        pairs = [(k, v) for k in _QUERY_FIELDS if (v := getattr(self, k)) is not None]
        return "&".join(f"{k}={enc(v)}" for k, v in pairs)


class SessionBody(WireBody):
    """external_users/session and external_users/utils/assistant_session."""

    external_user: ExternalUser


class InputText(WireBody):
    """A text part of a user message."""

    type: Literal["input_text"] = "input_text"
    text: str


class InputImageUrl(WireBody):
    """An image part of a user message (a `data:` URL)."""

    type: Literal["input_image"] = "input_image"
    image_url: str


class InputMessage(WireBody):
    """One message of a completion's `input` list."""

    role: Literal["developer", "user"]
    content: str | list[InputText | InputImageUrl]


class ImageGenerationTool(WireBody):
    """The `image_generation` tool definition."""

    type: Literal["image_generation"] = "image_generation"
    size: str
    quality: str
    format: str
    action: str | None = None


class ToolChoice(WireBody):
    """`tool_choice` forcing the image tool."""

    type: Literal["image_generation"] = "image_generation"


class CompletionBody(WireBody):
    """external_users/assistant/completion: the payload fields, then `external_user`."""

    session_id: str
    input: str | list[InputMessage]
    tools: list[ImageGenerationTool] | None = None
    tool_choice: ToolChoice | Literal["auto"] | None = None
    max_output_tokens: int | None = None
    previous_response_id: str | None = None
    external_user: ExternalUser

    @classmethod
    def build(
        cls,
        request: CompletionRequest,
        user: ExternalUser,
        *,
        picture_urls: Sequence[str] | None = None,
    ) -> CompletionBody:
        """A plain string input when possible, else a developer message and a multipart user one.

        The pictures' URLs are their `data:` URLs unless `picture_urls` gives others, in order.
        """
        input_: str | list[InputMessage] = request.text
        if request.developer_prompt or request.images:
            parts: list[InputText | InputImageUrl] = []
            if request.text or not request.images:
                parts.append(InputText(text=request.text))
            urls = picture_urls if picture_urls is not None else map(data_url, request.images)
            parts += [InputImageUrl(image_url=url) for url in urls]
            input_ = [InputMessage(role="user", content=parts)]
            if request.developer_prompt:
                input_.insert(0, InputMessage(role="developer", content=request.developer_prompt))
        tools = choice = None
        if (opts := request.image_tool) is not None:
            tools = [
                ImageGenerationTool(
                    size=opts.size, quality=opts.quality, format=opts.format, action=opts.action
                )
            ]
            choice = ToolChoice() if request.force_image else "auto"
        return cls(
            session_id=request.session_id,
            input=input_,
            tools=tools,
            tool_choice=choice,
            max_output_tokens=request.max_output_tokens,
            previous_response_id=request.previous_response_id,
            external_user=user,
        )


def completion_content(request: CompletionRequest, user: ExternalUser) -> bytes | PicturesBody:
    """The bytes of `CompletionBody.build(request, user).to_json()`; with pictures, the same
    bytes as a `PicturesBody`, so that their base64 is made as they are sent."""
    if not request.images:
        return CompletionBody.build(request, user).to_json()
    # Stand-ins for the data: URLs, found again in the JSON text; a random nonce, so that no
    # text of the member's can be taken for one.
    nonce = secrets.token_hex(16)
    stand_ins = [f"{nonce}:{number}" for number in range(len(request.images))]
    rest = CompletionBody.build(request, user, picture_urls=stand_ins).to_json()
    pieces: list[bytes | InputImage] = []
    for stand_in, image in zip(stand_ins, request.images, strict=True):
        before, found, rest = rest.partition(stand_in.encode("ascii"))
        assert found, "each picture's stand-in is in the JSON text"
        # The URL's start as the serializer writes a string, without the quotes around it.
        pieces += [before, to_json(data_url_start(image))[1:-1], image]
    return PicturesBody((*pieces, rest))


@dataclass(frozen=True, slots=True)
class PicturesBody:
    """A JSON body carrying pictures as data: URLs, sent as it is made: its text as it is,
    each picture's base64 a slice at a time, the event loop free between slices (a member's
    four 8 MiB pictures made 45 MB of JSON in one step, a quarter of a second). Iterated
    afresh by every attempt, so that a retry sends the same bytes."""

    pieces: tuple[bytes | InputImage, ...]

    SLICE: ClassVar[int] = 3 * 64 * 1024
    """Bytes of a picture encoded at once (a multiple of 3: the slices' base64 joins up)."""

    def __len__(self) -> int:
        """The body's length in bytes (its Content-Length)."""
        return sum(
            len(piece) if isinstance(piece, bytes) else 4 * math.ceil(len(piece.data) / 3)
            for piece in self.pieces
        )

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            if isinstance(piece, bytes):
                yield piece
                continue
            data = memoryview(piece.data)
            for start in range(0, len(data), self.SLICE):
                yield base64.b64encode(data[start : start + self.SLICE])
                await asyncio.sleep(0)


class UserPromptBody(WireBody):
    """external_users/assistant/set_system_prompt; a null prompt clears it."""

    keep_null: ClassVar[frozenset[str]] = frozenset({"system_prompt"})
    system_prompt: str | None
    external_user: ExternalUser


class AccountPromptBody(WireBody):
    """assistant/set_system_prompt; a null prompt clears it."""

    keep_null: ClassVar[frozenset[str]] = frozenset({"system_prompt"})
    system_prompt: str | None


class CreditsInput(WireBody):
    """The `input` of a recharge or grant."""

    credits: int


class CreditsBody(WireBody):
    """external_users/credits/recharge and external_users/credits/grant."""

    external_user: ExternalUser
    input: CreditsInput


class LoginTokenBody(WireBody):
    """external_users/create_login_token."""

    external_user: ExternalUser
    redirect: str | None = None


# --- responses -----------------------------------------------------------------------


class WireResponse(BaseModel):
    """A response body: unknown fields tolerated, required ones enforced, numbers finite."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class BalanceResponse(WireResponse):
    """ExternalUserSessionResponse, ExternalCreditsBalanceResponse, ExternalCreditsGrantResponse."""

    remaining_credits: float | None = Field(alias="remainingCredits")


class AssistantSessionResponse(WireResponse):
    """ExternalAssistantSessionResponse."""

    session_id: str = Field(min_length=1)


class PromptResponse(WireResponse):
    """AssistantSetSystemPromptResponse (account and external user)."""

    system_prompt: str | None


class RechargeResponse(WireResponse):
    """ExternalCreditsRechargeResponse."""

    url: str = Field(min_length=1)
    credits: float | None = None
    amount_usd: float | None = Field(default=None, alias="amountUsd")


class LoginTokenResponse(WireResponse):
    """ExternalCreateLoginTokenResponse."""

    login_token: str = Field(alias="loginToken", min_length=1)
    login_url: str = Field(alias="loginUrl", min_length=1)  # optional in the reference; we need it
    expires_at: str | None = Field(default=None, alias="expiresAt")
    expires_in_seconds: float | None = Field(default=None, alias="expiresInSeconds")


R = TypeVar("R", bound=WireResponse)


def parse(model: type[R], body: dict[str, Any], *, status: int | None, request_id: str | None) -> R:
    """Validate a 2xx body; MalformedResponse naming the failing fields (never their values)."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        where = ", ".join(".".join(map(str, e["loc"])) or "body" for e in exc.errors())
        raise MalformedResponse(
            f"unexpected {model.__name__} body (bad or missing: {where})",
            status=status,
            request_id=request_id,
        ) from exc
