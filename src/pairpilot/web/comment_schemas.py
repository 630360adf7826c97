"""Request and response bodies of the comments API (web/comments.py), and their bounds."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

# Plain text: any character but the C0 controls other than tab and newlines (PostgreSQL's text
# cannot hold a NUL; the others are nobody's prose).
PLAIN_TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
# A file's identity as the page names it (its path today), without control characters.
FILE_NAME = r"^[^\x00-\x1f\x7f]+$"
# base64 of Y.encodeRelativePosition: a few dozen bytes; 256 characters leave room to spare.
ENCODED_POSITION = r"^[A-Za-z0-9+/]+={0,2}$"
MAX_POSITION_CHARS = 256
# Bodies and quotes past these are refused with 413 comment_too_long (README, "Comment threads");
# the schema's own bound (400) only stops absurd payloads before they reach the limit check.
MAX_BODY_CHARS = 4000
MAX_QUOTE_CHARS = 2000
SCHEMA_MAX_CHARS = 100_000


class AnchorIn(BaseModel):
    """Where a thread is: a range as two encoded Yjs relative positions (base64)."""

    start: str = Field(min_length=4, max_length=MAX_POSITION_CHARS, pattern=ENCODED_POSITION)
    end: str = Field(min_length=4, max_length=MAX_POSITION_CHARS, pattern=ENCODED_POSITION)


class ThreadIn(BaseModel):
    """A new thread: the file, the anchored range, the text it quotes and the first comment."""

    file: str = Field(min_length=1, max_length=1024, pattern=FILE_NAME)
    anchor: AnchorIn
    quote: str = Field(max_length=SCHEMA_MAX_CHARS, pattern=PLAIN_TEXT)
    body: str = Field(max_length=SCHEMA_MAX_CHARS, pattern=PLAIN_TEXT)


class ReplyIn(BaseModel):
    """A reply's text."""

    body: str = Field(max_length=SCHEMA_MAX_CHARS, pattern=PLAIN_TEXT)


class ResolvedIn(BaseModel):
    """Resolve (true) or reopen (false) a thread."""

    resolved: bool


class AnchorOut(BaseModel):
    """A thread's anchor, as it was given."""

    start: str
    end: str


class CommentOut(BaseModel):
    """One reply."""

    id: str
    thread_id: str
    author_id: str
    author_name: str | None
    body: str
    created_at: datetime


class ThreadOut(BaseModel):
    """A thread with its opening comment, its state and its replies (oldest first)."""

    id: str
    file: str
    anchor: AnchorOut
    quote: str
    author_id: str
    author_name: str | None
    body: str
    created_at: datetime
    resolved: bool
    resolved_by: str | None
    resolved_at: datetime | None
    replies: list[CommentOut]


class ThreadsOut(BaseModel):
    """A room's threads, oldest first."""

    threads: list[ThreadOut]


class ResolvedOut(BaseModel):
    """A thread's state after a resolve or reopen."""

    thread_id: str
    resolved: bool
    resolved_by: str | None
    resolved_at: datetime | None


class DeletedOut(BaseModel):
    """What a delete removed: a thread (``comment_id`` = ``thread_id``) or one reply."""

    thread_id: str
    comment_id: str
    deleted: Literal[True] = True
