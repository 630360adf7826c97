"""A request body kept in memory while small, in a temporary file once big (a zip import's).

A big body goes to the merge worker, which reads it from the file: before, the server joined
the body's chunks, copied the whole into ``bytes`` and pickled it down a 64 KiB pipe to the
worker, three copies of up to 8 MB with the GIL held and a hundred round trips between two
processes on each zip posted (bench/README.md, "Off the event loop"). Written to a file, each
chunk is copied by the kernel with the GIL released. The file is in the system's temporary
directory and is removed when the request ends (an unlinked file's space is freed at once).
"""

from __future__ import annotations

import tempfile
from typing import IO


class Spool:
    """The bytes written to it: in memory below ``in_memory`` bytes, else in a named file."""

    def __init__(self, in_memory: int) -> None:
        self._in_memory = in_memory
        self._memory = bytearray()
        self._file: IO[bytes] | None = None
        self.size = 0

    @property
    def in_file(self) -> bool:
        """Whether the body passed ``in_memory`` bytes and went to a file."""
        return self._file is not None

    def write(self, chunk: bytes) -> None:
        """Add ``chunk`` (to the file once the body has reached ``in_memory`` bytes)."""
        self.size += len(chunk)
        if self._file is None and self.size < self._in_memory:
            self._memory += chunk
            return
        if self._file is None:
            self._file = tempfile.NamedTemporaryFile(prefix="pairpilot-body-")  # noqa: SIM115
            self._file.write(self._memory)
            self._memory = bytearray()
        self._file.write(chunk)

    def source(self) -> bytes | str:
        """The body: its bytes, or the path of the file holding them (all written)."""
        if self._file is None:
            return bytes(self._memory)
        self._file.flush()
        return self._file.name

    def close(self) -> None:
        """Remove the file, if any; idempotent."""
        if self._file is not None:
            self._file.close()
            self._file = None
