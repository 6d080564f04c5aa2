"""Every error the bot can meet, by cause.

    BotError
    ├── SamsarError                 the Samsar API failed (carries status, request id)
    │   ├── AuthenticationFailed    401/403: the platform API key is wrong or revoked
    │   ├── InsufficientCredits     402: the member must buy credits
    │   ├── NotFound                404
    │   ├── BadRequest              400/409/413/422: Samsar refused the input
    │   ├── RateLimited             429 (retry_after seconds when Samsar said so)
    │   ├── UpstreamError           5xx (and 408, or any unexpected status)
    │   ├── SamsarTimeout           no answer in time
    │   ├── SamsarUnreachable       connection failed
    │   └── MalformedResponse       a 2xx body we cannot read
    ├── ConversationError           a rule of the conversation refused the action
    │   ├── NotThreadOwner          another member owns this thread's session
    │   ├── NotAdmin                an admin-only action by a non-admin
    │   ├── InputRejected           too long, too many images, image too large or unreadable
    │   └── SlowDown                the member sent more than their rate allows (wait seconds)
    └── Unexpected                  a turn ended in a failure nothing above foresaw (a bug)

Adapters turn these into user text through one module (`bots.texts`).
"""

from __future__ import annotations

from collections.abc import Mapping


class BotError(Exception):
    """Base of every error the bot turns into a reply."""


class SamsarError(BotError):
    """The Samsar API call failed; `status` is the HTTP status when there was one."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        credits_remaining: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.request_id = request_id
        self.credits_remaining = credits_remaining


class AuthenticationFailed(SamsarError):
    """Samsar refused the platform API key (401/403)."""


class InsufficientCredits(SamsarError):
    """The external user has not enough credits for the call; `checkout_url` (when the bot
    could get one) buys more in one click."""

    checkout_url: str | None = None


class NotFound(SamsarError):
    """Samsar does not know the resource (404)."""


class BadRequest(SamsarError):
    """Samsar refused the request as invalid (400/409/413/422)."""


class RateLimited(SamsarError):
    """Samsar asked us to slow down (429); `retry_after` in seconds when given."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = 429,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status=status, request_id=request_id)
        self.retry_after = retry_after


class UpstreamError(SamsarError):
    """Samsar failed on its side (5xx)."""


class SamsarTimeout(SamsarError):
    """Samsar did not answer in time."""


class SamsarUnreachable(SamsarError):
    """The connection to Samsar could not be made."""


class MalformedResponse(SamsarError):
    """Samsar answered 2xx with a body we cannot read (bad JSON, bad image data)."""


class ConversationError(BotError):
    """A conversation rule refused the action."""


class NotThreadOwner(ConversationError):
    """This thread's session belongs to another member."""

    def __init__(self, owner_display: str | None = None) -> None:
        super().__init__("thread owned by another member")
        self.owner_display = owner_display


class NotAdmin(ConversationError):
    """Only workspace admins may do this."""

    def __init__(self) -> None:
        super().__init__("admin only")


class SlowDown(ConversationError):
    """The member is over their rate of turns; `wait` seconds until the next is allowed."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"member over their rate; next in {wait:.1f} s")
        self.wait = wait


class InputRejected(ConversationError):
    """The member's input breaks a limit; `reason` is one of the REASON_* constants."""

    TOO_LONG = "too_long"
    EMPTY = "empty"
    TOO_MANY_IMAGES = "too_many_images"
    IMAGE_TOO_LARGE = "image_too_large"
    IMAGE_UNREADABLE = "image_unreadable"
    BAD_VALUE = "bad_value"
    USAGE = "usage"  # a command written wrong: `detail` is its usage line
    GONE = "gone"  # a button of a turn the ledger no longer holds (past its retention)

    def __init__(self, reason: str, *, limit: int | None = None, detail: str | None = None) -> None:
        super().__init__(f"input rejected: {reason}")
        self.reason = reason
        self.limit = limit
        self.detail = detail


class Unexpected(BotError):
    """A turn ended in a failure nothing foresaw; the member gets the generic sentence."""

    def __init__(self, message: str = "unexpected failure") -> None:
        super().__init__(message)


class Undeliverable(Exception):
    """A platform refused a delivery for good (the channel is gone, the bot was removed):
    the worker stops trying. Not a BotError: no member reads it."""


Record = Mapping[str, str | int | float | bool | None]


def to_record(error: BotError) -> dict[str, str | int | float | bool | None]:
    """The error as plain values (its class name and attributes), for the turn ledger."""
    fields = {
        name: value
        for name, value in vars(error).items()
        if isinstance(value, str | int | float | bool) or value is None
    }
    return {"type": type(error).__name__, "text": str(error), **fields}


def from_record(record: Record) -> BotError:
    """The error a record describes; an unknown type reads as `Unexpected`."""
    cls = _ERROR_TYPES.get(str(record.get("type")))
    if cls is None:
        return Unexpected(str(record.get("text") or "unknown error"))
    error = cls.__new__(cls)
    Exception.__init__(error, str(record.get("text") or ""))
    for name, value in record.items():
        if name not in ("type", "text"):
            setattr(error, name, value)
    return error


def _subclasses(cls: type[BotError]) -> list[type[BotError]]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _subclasses(child))]


_ERROR_TYPES: dict[str, type[BotError]] = {cls.__name__: cls for cls in _subclasses(BotError)}


RETRYABLE: tuple[type[BotError], ...] = (
    RateLimited,
    SamsarTimeout,
    SamsarUnreachable,
    UpstreamError,
)
"""Failures Samsar may get over: a member may try again (with the same request and key)."""
