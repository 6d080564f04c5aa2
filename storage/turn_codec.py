"""Turn values ↔ the JSON columns of the `turns` table (request, call, reply, error)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import Row

from core.errors import BotError, from_record, to_record
from core.models import (
    ChatUser,
    Credits,
    ImageOptions,
    ImageProblem,
    Reply,
    ReplyImage,
    SamsarCall,
    ThreadRef,
    Turn,
    TurnKind,
    TurnRequest,
    TurnStatus,
)
from storage.direct import AnyRow
from storage.tables import TurnImageRow, TurnRow


def dump_request(request: TurnRequest) -> str:
    """The request as JSON."""
    return json.dumps(
        {
            "user": _flat(request.user),
            "thread": _flat(request.thread),
            "text": request.text,
            "kind": request.kind.value,
            "image": _flat(request.image) if request.image else None,
            "attachments": request.attachments,
        }
    )


def _flat(value: ChatUser | ThreadRef | ImageOptions) -> dict[str, Any]:
    """A dataclass of plain fields as a dict (`asdict` copies deeply, field by field: slow,
    and nothing here is nested)."""
    return {name: getattr(value, name) for name in value.__dataclass_fields__}


def load_request(raw: str) -> TurnRequest:
    """The request a JSON column holds."""
    data: dict[str, Any] = json.loads(raw)
    image = data.get("image")
    return TurnRequest(
        user=ChatUser(**data["user"]),
        thread=ThreadRef(**data["thread"]),
        text=data["text"],
        kind=TurnKind(data["kind"]),
        image=ImageOptions(**image) if image else None,
        attachments=data.get("attachments", ""),
    )


def dump_call(call: SamsarCall) -> str:
    """The fixed completion body as JSON."""
    return json.dumps(asdict(call))


def dump_reply(reply: Reply) -> str:
    """The reply as JSON; image bytes go to `turn_images` (see `image_rows`)."""
    return json.dumps(
        {
            "text": reply.text,
            "credits": asdict(reply.credits),
            "session_id": reply.session_id,
            "new_session": reply.new_session,
            "image_problems": [problem.value for problem in reply.image_problems],
            "images": [
                {"mime": i.mime, "filename": i.filename, "revised_prompt": i.revised_prompt}
                for i in reply.images
            ],
        }
    )


def image_rows(turn_id: str, reply: Reply) -> list[TurnImageRow]:
    """The reply's images as rows."""
    return [
        TurnImageRow(
            turn_id=turn_id,
            position=position,
            mime=image.mime,
            filename=image.filename,
            revised_prompt=image.revised_prompt,
            data=image.data,
        )
        for position, image in enumerate(reply.images)
    ]


def load_reply(raw: str, turn_id: str, images: Sequence[TurnImageRow | Row[Any]]) -> Reply:
    """The reply a JSON column holds, with the images still kept (none once delivered)."""
    data: dict[str, Any] = json.loads(raw)
    kept = sorted(images, key=lambda row: row.position)
    return Reply(
        text=data["text"],
        images=tuple(
            ReplyImage(row.data, row.mime, row.filename, row.revised_prompt) for row in kept
        ),
        credits=Credits(**data["credits"]),
        image_problems=tuple(ImageProblem(p) for p in data.get("image_problems", ())),
        session_id=data.get("session_id"),
        turn_id=turn_id,
        new_session=bool(data.get("new_session")),
    )


def dump_error(error: BotError) -> str:
    """The error the member is told, as JSON."""
    return json.dumps(to_record(error))


def to_turn(row: TurnRow | AnyRow, images: Sequence[TurnImageRow | Row[Any]] = ()) -> Turn:
    """A row as a core `Turn`."""
    return Turn(
        turn_id=row.turn_id,
        event_key=row.event_key,
        platform=row.platform,
        thread_key=row.thread_key,
        user_key=row.user_key,
        kind=row.kind,
        status=TurnStatus(row.status),
        request=load_request(row.request) if row.request else None,
        route=row.route,
        posted=row.posted,
        call=SamsarCall(**json.loads(row.call)) if row.call else None,
        reply=load_reply(row.reply, row.turn_id, images) if row.reply else None,
        error=from_record(json.loads(row.error)) if row.error else None,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        runs=row.runs,
        delivery_attempts=row.delivery_attempts,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
        completed_at=row.completed_at,
        finished_at=row.finished_at,
        latency_ms=row.latency_ms,
        credits_charged=row.credits_charged,
    )
