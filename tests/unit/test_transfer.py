"""The merge worker's upload jobs, run here: a full room's zip is refused on its first bytes."""

from pycrdt import Doc
from tests.support import zip_of

from pairpilot.sync.files import read_files, read_tree
from pairpilot.sync.transfer import RoomTree, UploadLimits, zip_upload

LIMITS = UploadLimits(files=10, file_bytes=8 << 20, total_bytes=16 << 20)


def test_a_zip_past_the_rooms_space_is_inflated_one_byte_past_it_and_not_built():
    """Its entries' headers are not trusted: what counts is what inflates."""
    data = zip_of({"a.txt": b"a" * 1000, "big.txt": b"b" * (4 << 20), "bad.bin": b"\x00\xff"})
    upload = zip_upload(data, LIMITS, RoomTree(frozenset(), frozenset(), room_left=1500))
    assert upload.update is None
    assert upload.text_bytes == 1501  # a.txt, then big.txt up to one byte past the space


def test_a_zip_the_room_has_space_for_is_built_against_its_tree():
    data = zip_of({"a.txt": b"one", "src/": b"", "src/b.py": b"two"})
    room = RoomTree(frozenset({"a.txt"}), frozenset(), room_left=6)
    upload = zip_upload(data, LIMITS, room)
    assert (upload.names, upload.sources, upload.text_bytes) == (
        ["a (2).txt", "src/b.py"],
        ["a.txt", "src/b.py"],
        6,
    )
    assert upload.update is not None
    doc: Doc = Doc()
    doc.apply_update(upload.update)
    assert read_files(doc) == {"a (2).txt": "one", "src/b.py": "two"}
    assert read_tree(doc).folders == ["src"]
