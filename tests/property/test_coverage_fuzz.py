"""Coverage-guided fuzzing (atheris) of the frame reader and the protocol decoders, bounded.

Each target runs in its own process for PAIRPILOT_FUZZ_SECONDS (default 10) from a seed corpus
of valid input; libFuzzer then mutates towards new branches of ``web/frames.py`` and
``sync/protocol.py``. A failing input is written to the test's tmp dir and printed (base64).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pycrdt import Awareness, Doc, Text
from tests.support import unavailable
from websockets.frames import Close, Frame, Opcode

from pairpilot.sync import protocol

TARGETS = Path(__file__).with_name("atheris_targets.py")
SECONDS = int(os.environ.get("PAIRPILOT_FUZZ_SECONDS", "10"))


@pytest.fixture(scope="module")
def atheris_python() -> str:
    try:
        import atheris  # noqa: F401, PLC0415 - only to know whether it is installed
    except ImportError:
        unavailable("atheris (a dev dependency with wheels for Linux x86_64 only)")
    return sys.executable


def _messages() -> list[bytes]:
    doc: Doc = Doc()
    doc["code"] = Text("print('hi')")
    awareness = Awareness(doc)
    awareness.set_local_state({"user": {"name": "Ada"}})
    update = awareness.encode_awareness_update([awareness.client_id])
    return [
        protocol.sync_step1(doc.get_state()),
        protocol.sync_step2(doc.get_update()),
        protocol.sync_update(doc.get_update()),
        protocol.awareness(update),
        b"\x03",
        protocol.saved({doc.client_id: 3}, set()),
        b"\x02\x03\x05token",  # a client's new token (auth, sub-type 3)
    ]


def _frames() -> list[bytes]:
    """Streams of masked client frames: fast ones, fragments, control frames, text, a close."""
    messages = _messages()
    fast = b"".join(Frame(Opcode.BINARY, m).serialize(mask=True) for m in messages)
    first, rest = messages[1][:3], messages[1][3:]
    fragmented = (
        Frame(Opcode.BINARY, first, fin=False).serialize(mask=True)
        + Frame(Opcode.PING, b"hi").serialize(mask=True)
        + Frame(Opcode.CONT, rest).serialize(mask=True)
    )
    large = Frame(Opcode.BINARY, b"\x00\x02" + b"x" * 300).serialize(mask=True)
    text = Frame(Opcode.TEXT, b"hello").serialize(mask=True)
    close = Frame(Opcode.CLOSE, Close(1000, "bye").serialize()).serialize(mask=True)
    # The first byte tells the target how many cut points follow (0 or 3 here).
    return [
        b"\x00" + fast,
        b"\x03\x05\x11\x40" + fast + close,
        b"\x00" + fragmented,
        b"\x00" + large,
        b"\x02\x09\x30" + large,
        b"\x00" + text + fast,
    ]


def _fuzz(python: str, target: str, seeds: list[bytes], folder: Path) -> None:
    corpus = folder / "corpus"
    corpus.mkdir()
    for number, seed in enumerate(seeds):
        (corpus / f"seed-{number}").write_bytes(seed)
    run = subprocess.run(
        [
            python,
            str(TARGETS),
            target,
            f"-max_total_time={SECONDS}",
            "-timeout=10",  # one input taking this long is a hang: a failure
            "-rss_limit_mb=2048",
            f"-artifact_prefix={folder}/",
            str(corpus),
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
        check=False,
    )
    output = "\n".join(
        line for line in run.stderr.splitlines() if not line.startswith("INFO: Instrumenting")
    )
    assert run.returncode == 0, output[-4000:]
    assert "Done" in output, output[-4000:]


def test_the_frame_reader_reads_any_stream_as_websockets_alone(atheris_python, tmp_path: Path):
    _fuzz(atheris_python, "frames", _frames(), tmp_path)


def test_the_decoders_raise_nothing_but_protocol_error(atheris_python, tmp_path: Path):
    _fuzz(atheris_python, "protocol", _messages(), tmp_path)
