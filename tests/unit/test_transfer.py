"""The merge worker's upload jobs, run here: a full room's zip is refused on its first bytes."""

from pycrdt import Doc
from tests.support import zip_of

from pairpilot.sync.files import read_files, read_tree
from pairpilot.sync.transfer import RoomTree, UploadLimits, files_updates, zip_upload

LIMITS = UploadLimits(files=10, file_bytes=8 << 20, total_bytes=16 << 20)


def test_a_zip_past_the_rooms_space_is_inflated_one_byte_past_it_and_not_built():
    """Its entries' headers are not trusted: what counts is what inflates."""
    data = zip_of({"a.txt": b"a" * 1000, "big.txt": b"b" * (4 << 20), "bad.bin": b"\x00\xff"})
    upload = zip_upload(data, LIMITS, RoomTree(frozenset(), frozenset(), room_left=1500))
    assert upload.pieces is None
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
    assert upload.pieces is not None
    doc: Doc = Doc()
    for piece in upload.pieces:
        doc.apply_update(piece)
    assert read_files(doc) == {"a (2).txt": "one", "src/b.py": "two"}
    assert read_tree(doc).folders == ["src"]


def test_an_uploads_pieces_each_add_whole_files_and_make_the_upload_in_order():
    files = [(f"f{n}.txt", str(n) * 600) for n in range(4)]
    pieces = files_updates(files, ["empty"], piece_bytes=1000)
    assert len(pieces) == 4  # 600 + 600 is past 1000: a file per piece
    doc: Doc = Doc()
    for count, piece in enumerate(pieces, 1):
        doc.apply_update(piece)
        assert read_files(doc) == dict(files[:count])  # never half a file
    assert read_tree(doc).folders == ["empty"]


def test_small_files_share_a_piece_and_a_file_past_the_piece_size_comes_whole():
    small = [(f"s{n}.txt", "s" * 100) for n in range(5)]
    assert len(files_updates(small, piece_bytes=1000)) == 1
    big = files_updates([("big.txt", "b" * 5000), *small], piece_bytes=1000)
    assert len(big) == 2
    doc: Doc = Doc()
    doc.apply_update(big[0])
    assert read_files(doc) == {"big.txt": "b" * 5000}


def test_an_upload_of_folders_only_is_one_piece():
    (piece,) = files_updates([], ["a", "a/b"])
    doc: Doc = Doc()
    doc.apply_update(piece)
    assert read_tree(doc).folders == ["a", "a/b"]
