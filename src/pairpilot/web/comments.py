"""Comment threads of a room (issue #25): members read, editors and owners write.

Every change is published on the room's bus as a "comments" auth message (sub-type 4,
sync/protocol.py), so the room's pages on every process hear of it without a reload; stock
y-websocket clients read that sub-type and ignore it. A page that was away refetches the list.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from pairpilot.access.authorizer import check_room_id
from pairpilot.errors import BadRequestError, RefusedError
from pairpilot.guardrails import COMMENT_SIZE
from pairpilot.storage.comments import (
    Anchor,
    Comment,
    Deleted,
    NewThread,
    RoomComments,
    Thread,
)
from pairpilot.sync.protocol import comments_changed
from pairpilot.web.comment_schemas import (
    FILE_NAME,
    MAX_BODY_CHARS,
    MAX_QUOTE_CHARS,
    AnchorOut,
    CommentOut,
    DeletedOut,
    ReplyIn,
    ResolvedIn,
    ResolvedOut,
    ThreadIn,
    ThreadOut,
    ThreadsOut,
)
from pairpilot.web.deps import Caller, ServicesDep, WriteRate, tag_room
from pairpilot.web.rooms import ERRORS, WRITE_ERRORS, RoomId
from pairpilot.web.services import Services

router = APIRouter(prefix="/api/rooms", tags=["comments"], dependencies=[Depends(tag_room)])
CommentId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9_-]{1,32}$", description="A thread's or a reply's id")
]


def checked_body(body: str) -> str:
    """The body without surrounding blanks; 400 when empty, 413 comment_too_long when long."""
    text = body.strip()
    if not text:
        raise BadRequestError("body: a comment needs some text")
    if len(text) > MAX_BODY_CHARS:
        raise RefusedError(
            COMMENT_SIZE,
            f"A comment holds at most {MAX_BODY_CHARS} characters; this one has {len(text)}",
        )
    return text


def _quote(quote: str) -> str:
    if len(quote) > MAX_QUOTE_CHARS:
        raise RefusedError(
            COMMENT_SIZE,
            f"A thread quotes at most {MAX_QUOTE_CHARS} characters; this one has {len(quote)}",
        )
    return quote


def _comment_out(comment: Comment, thread_id: str) -> CommentOut:
    return CommentOut(
        id=comment.id,
        thread_id=thread_id,
        author_id=comment.author_id,
        author_name=comment.author_name,
        body=comment.body,
        created_at=comment.created_at,
    )


def _thread_out(thread: Thread) -> ThreadOut:
    opening = thread.opening
    return ThreadOut(
        id=thread.id,
        file=thread.file,
        anchor=AnchorOut(start=thread.anchor.start, end=thread.anchor.end),
        quote=thread.quote,
        author_id=opening.author_id,
        author_name=opening.author_name,
        body=opening.body,
        created_at=opening.created_at,
        resolved=thread.resolved,
        resolved_by=thread.resolved_by,
        resolved_at=thread.resolved_at,
        replies=[_comment_out(reply, thread.id) for reply in thread.replies],
    )


def tell_deleted(services: Services, gone: Deleted) -> None:
    """The room's pages drop a deleted thread or reply."""
    out = DeletedOut(thread_id=gone.thread_id, comment_id=gone.comment_id)
    _tell_room(services, gone.room_id, "deleted", deleted=out)


def _tell_room(services: Services, room_id: str, event: str, **payload: BaseModel) -> None:
    """Every page of the room, on every process, hears of the change (after it committed)."""
    change = {
        "event": event,
        **{key: value.model_dump(mode="json") for key, value in payload.items()},
    }
    services.bus.publish(room_id, comments_changed(json.dumps(change).encode()), None)


@router.get("/{room_id}/comments", responses=ERRORS)
async def list_comments(
    room_id: RoomId,
    identity: Caller,
    services: ServicesDep,
    file: Annotated[str | None, Query(min_length=1, max_length=1024, pattern=FILE_NAME)] = None,
    resolved: bool | None = None,  # noqa: FBT001 - a query parameter, named by FastAPI
) -> ThreadsOut:
    """The room's threads with their replies, oldest first; ``?file=`` and ``?resolved=`` filter."""
    found = await RoomComments(services.directory).threads(
        check_room_id(room_id), identity, file=file, resolved=resolved
    )
    return ThreadsOut(threads=[_thread_out(thread) for thread in found])


@router.post(
    "/{room_id}/comments", status_code=201, responses=WRITE_ERRORS, dependencies=[WriteRate]
)
async def open_thread(
    room_id: RoomId, body: ThreadIn, identity: Caller, services: ServicesDep
) -> ThreadOut:
    """Open a thread on a range of a file (editors and owners)."""
    new = NewThread(
        file=body.file,
        anchor=Anchor(body.anchor.start, body.anchor.end),
        quote=_quote(body.quote),
        body=checked_body(body.body),
    )
    thread = await RoomComments(services.directory).open_thread(
        check_room_id(room_id), identity, new
    )
    out = _thread_out(thread)
    _tell_room(services, room_id, "thread", thread=out)
    return out


@router.post(
    "/{room_id}/comments/{thread_id}/replies",
    status_code=201,
    responses=WRITE_ERRORS,
    dependencies=[WriteRate],
)
async def reply(
    room_id: RoomId, thread_id: CommentId, body: ReplyIn, identity: Caller, services: ServicesDep
) -> CommentOut:
    """Reply to a thread (editors and owners)."""
    comment = await RoomComments(services.directory).reply(
        check_room_id(room_id), identity, thread_id, checked_body(body.body)
    )
    out = _comment_out(comment, thread_id)
    _tell_room(services, room_id, "reply", reply=out)
    return out


@router.patch("/{room_id}/comments/{thread_id}", responses=WRITE_ERRORS, dependencies=[WriteRate])
async def resolve(
    room_id: RoomId,
    thread_id: CommentId,
    body: ResolvedIn,
    identity: Caller,
    services: ServicesDep,
) -> ResolvedOut:
    """Resolve or reopen a thread, anyone's (editors and owners)."""
    thread = await RoomComments(services.directory).set_resolved(
        check_room_id(room_id), identity, thread_id, resolved=body.resolved
    )
    out = ResolvedOut(
        thread_id=thread.id,
        resolved=thread.resolved,
        resolved_by=thread.resolved_by,
        resolved_at=thread.resolved_at,
    )
    _tell_room(services, room_id, "resolved", state=out)
    return out


@router.delete("/{room_id}/comments/{comment_id}", responses=WRITE_ERRORS, dependencies=[WriteRate])
async def delete_comment(
    room_id: RoomId, comment_id: CommentId, identity: Caller, services: ServicesDep
) -> DeletedOut:
    """Delete a thread (with its replies) or one reply: its author (editor) or an owner."""
    gone = await RoomComments(services.directory).delete(
        check_room_id(room_id), identity, comment_id
    )
    tell_deleted(services, gone)
    return DeletedOut(thread_id=gone.thread_id, comment_id=gone.comment_id)
