"""Tests for fishcat.archive: safe extraction of uploaded zip data sets."""

from __future__ import annotations

import errno
import io
import os
import stat
import tempfile
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fishcat import archive
from fishcat.archive import ArchiveError, ArchiveLimits, extract_zip, find_dataset_root

Entry = tuple["str | zipfile.ZipInfo", bytes]


def make_zip(path: Path, entries: list[Entry], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with warnings.catch_warnings():
        # zipfile warns on duplicate names, which some tests create on purpose.
        warnings.simplefilter("ignore", UserWarning)
        with zipfile.ZipFile(path, "w", compression=compression) as zf:
            for name, data in entries:
                zf.writestr(name, data)
    return path


def files_under(folder: Path) -> set[str]:
    return {
        Path(root, f).relative_to(folder).as_posix()
        for root, _dirs, names in os.walk(folder)
        for f in names
    }


def assert_nothing_left(dest: Path) -> None:
    assert not dest.exists()
    if dest.parent.exists():
        leftovers = [p.name for p in dest.parent.iterdir() if p.name.startswith(".tmp-")]
        assert leftovers == []


def refuse(zip_path: Path, dest: Path, match: str, limits: ArchiveLimits = ArchiveLimits()) -> None:
    with pytest.raises(ArchiveError, match=match) as excinfo:
        extract_zip(zip_path, dest, limits)
    # Every message names the archive so the user knows which upload failed.
    assert zip_path.name in str(excinfo.value)
    assert_nothing_left(dest)


# --- good archives -----------------------------------------------------------------


def test_book_layout_extracts_all_files_and_skips_junk(tmp_path: Path) -> None:
    good = {
        "mydata/train/cat/1.jpg": b"cat1",
        "mydata/train/dog/1.jpg": b"dog1",
        "mydata/val/cat/2.jpg": b"cat2",
        "mydata/val/dog/ünï.jpg": b"dog2",
    }
    junk = {
        "__MACOSX/mydata/train/cat/._1.jpg": b"rsrc",
        "mydata/.DS_Store": b"ds",
        "mydata/train/cat/._1.jpg": b"rsrc",
        "mydata/Thumbs.db": b"thumbs",
        "mydata/train/DESKTOP.INI": b"ini",
        "mydata/.git/config": b"[core]",
    }
    entries: list[Entry] = [("mydata/", b""), ("mydata/train/", b"")]
    entries += list(good.items()) + list(junk.items())
    z = make_zip(tmp_path / "book.zip", entries)
    dest = tmp_path / "out" / "ds1"  # parent does not exist yet

    assert extract_zip(z, dest) == dest
    assert files_under(dest) == set(good)
    for name, data in good.items():
        assert (dest / name).read_bytes() == data
    assert not (dest / "__MACOSX").exists()
    assert_nothing_left(tmp_path / "out" / "never")  # no temp folders beside dest
    assert find_dataset_root(dest) == dest / "mydata"


def test_backslash_names_become_folders(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "win.zip", [("train\\cat\\1.png", b"a"), ("train\\dog\\2.png", b"b")])
    dest = extract_zip(z, tmp_path / "out")
    assert files_under(dest) == {"train/cat/1.png", "train/dog/2.png"}


def test_dot_components_are_dropped(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "dot.zip", [("./train/./cat/1.png", b"a")])
    dest = extract_zip(z, tmp_path / "out")
    assert files_under(dest) == {"train/cat/1.png"}


def test_long_components_are_truncated_keeping_suffix(tmp_path: Path) -> None:
    long_ascii = "x" * 250 + ".png"
    long_unicode = "ü" * 150 + ".jpg"  # 300 bytes of UTF-8
    z = make_zip(tmp_path / "long.zip", [(f"d/{long_ascii}", b"a"), (f"d/{long_unicode}", b"b")])
    dest = extract_zip(z, tmp_path / "out")
    names = sorted(p.name for p in (dest / "d").iterdir())
    assert len(names) == 2
    for name in names:
        assert len(name.encode("utf-8")) <= 200
    assert any(n.endswith(".png") and n.startswith("xxx") for n in names)
    assert any(n.endswith(".jpg") and n.startswith("üüü") for n in names)


def test_small_well_compressed_files_are_fine(tmp_path: Path) -> None:
    # Ratio limits only apply above 1 MiB, so tiny files of zeros pass.
    z = make_zip(tmp_path / "zeros.zip", [(f"a/{i}.txt", bytes(10_000)) for i in range(5)])
    dest = extract_zip(z, tmp_path / "out", ArchiveLimits(max_ratio=2))
    assert len(files_under(dest)) == 5


def test_existing_dest_is_refused_and_untouched(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "a.zip", [("a.png", b"a")])
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(ArchiveError, match="already exists"):
        extract_zip(z, dest)
    assert files_under(dest) == {"keep.txt"}


# --- refused archives --------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../evil.png",
        "/abs.png",
        "\\abs.png",
        "C:\\x.png",
        "C:/x.png",
        "c:x.png",
        "a/../../b.png",
        "a\\..\\..\\b.png",
        "a//b.png",
    ],
)
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    z = make_zip(tmp_path / "bad.zip", [("ok/1.png", b"fine"), (zipfile.ZipInfo(name), b"evil")])
    refuse(z, tmp_path / "out", "entry")
    assert not (tmp_path / "evil.png").exists()
    assert not (tmp_path / "b.png").exists()


def test_bad_name_inside_junk_still_refuses(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "bad.zip", [("__MACOSX/../../evil.png", b"x")])
    refuse(z, tmp_path / "out", r"'\.\.'")


def test_nul_in_name_is_refused(tmp_path: Path) -> None:
    # zipfile cuts names at NUL when writing, so write a placeholder byte and
    # patch it to NUL in the raw archive (local header and central directory).
    z = make_zip(tmp_path / "nul.zip", [("a\x01b.png", b"x")])
    z.write_bytes(z.read_bytes().replace(b"a\x01b.png", b"a\x00b.png"))
    refuse(z, tmp_path / "out", "NUL")


def test_symlink_is_refused(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("train/link.png")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = make_zip(tmp_path / "link.zip", [("train/a.png", b"a"), (info, b"/etc/passwd")])
    refuse(z, tmp_path / "out", "symlink")


def test_fifo_is_refused(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("train/pipe")
    info.create_system = 3
    info.external_attr = (stat.S_IFIFO | 0o644) << 16
    z = make_zip(tmp_path / "fifo.zip", [(info, b"")])
    refuse(z, tmp_path / "out", "not a regular file")


def test_encrypted_is_refused(tmp_path: Path) -> None:
    # zipfile cannot write encrypted entries and resets flag_bits while writing;
    # setting the bit before close() puts it in the central directory, which is
    # what readers (and our validator) look at.
    path = tmp_path / "enc.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.png", b"secret")
        zf.getinfo("a.png").flag_bits |= 0x1
    refuse(path, tmp_path / "out", "encrypted")


@pytest.mark.parametrize("content", [b"", b"hello, I am a text file\n", b"PK\x03\x04garbage"])
def test_not_a_zip_is_refused(tmp_path: Path, content: bytes) -> None:
    z = tmp_path / "notes.zip"
    z.write_bytes(content)
    refuse(z, tmp_path / "out", "not a valid zip")


def test_missing_file_is_refused(tmp_path: Path) -> None:
    refuse(tmp_path / "missing.zip", tmp_path / "out", "could not be read")


def test_too_many_files(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "many.zip", [(f"{i}.png", b"x") for i in range(4)])
    refuse(z, tmp_path / "out", "4 entries", ArchiveLimits(max_files=3))
    assert extract_zip(z, tmp_path / "ok", ArchiveLimits(max_files=4)).is_dir()


def test_too_large_total(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "big.zip", [("a.png", os.urandom(600)), ("b.png", os.urandom(600))])
    refuse(z, tmp_path / "out", "total|limit of 1000 bytes", ArchiveLimits(max_total_bytes=1000))


def test_member_too_large(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "big.zip", [("a.png", os.urandom(200))])
    refuse(z, tmp_path / "out", "more than the limit of 100", ArchiveLimits(max_member_bytes=100))


def test_extreme_ratio_member(tmp_path: Path) -> None:
    # 2 MiB of zeros deflates to about 2 KiB (ratio ~1000); a limit of 50 keeps the test fast.
    z = make_zip(tmp_path / "bomb.zip", [("zeros.bin", bytes(2 * 1024**2))])
    refuse(z, tmp_path / "out", "compression ratio", ArchiveLimits(max_ratio=50))


def test_extreme_total_ratio(tmp_path: Path) -> None:
    # Each member is under 1 MiB (exempt alone) but together they exceed it.
    z = make_zip(tmp_path / "bomb.zip", [(f"{i}.bin", bytes(512 * 1024)) for i in range(3)])
    refuse(z, tmp_path / "out", "overall compression ratio", ArchiveLimits(max_ratio=50))


def test_member_lying_about_its_size(tmp_path: Path) -> None:
    # Declare 100 bytes in the central directory for 1 MiB of real data. zipfile
    # stops at the declared size, so the short read fails its CRC check.
    path = tmp_path / "liar.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.bin", bytes(1024**2))
        zf.getinfo("a.bin").file_size = 100
    refuse(path, tmp_path / "out", "corrupt")


def test_stream_guard_catches_extra_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # zipfile itself truncates at the declared size, so to exercise our own
    # running byte counter we hand it a stream that yields more than declared.
    z = make_zip(tmp_path / "liar.zip", [("ok.png", b"fine"), ("a.bin", b"0123456789")])
    real_open = zipfile.ZipFile.open

    def lying_open(self: zipfile.ZipFile, name: object, *args: object, **kwargs: object):
        if getattr(name, "filename", name) == "a.bin":
            return io.BytesIO(b"x" * 10_000)
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", lying_open)
    refuse(z, tmp_path / "out", "more data than its declared 10 bytes")


def test_duplicate_and_clashing_names(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "dup.zip", [("a.png", b"1"), ("a.png", b"2")])
    refuse(z, tmp_path / "out", "twice")
    z = make_zip(tmp_path / "clash.zip", [("a", b"1"), ("a/b.png", b"2")])
    refuse(z, tmp_path / "out2", "both a file and a folder")


def test_disk_full_mid_extraction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    z = make_zip(tmp_path / "full.zip", [(f"train/{i}.png", os.urandom(1000)) for i in range(5)])
    real_open = open
    opened = 0

    class FullDisk(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, b: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    def fake_open(path: object, mode: str = "r", *args: object, **kwargs: object):
        nonlocal opened
        opened += 1
        if opened >= 3:  # the first two files are written, the third fails
            real_open(path, mode).close()  # leave a partial file behind to clean up
            return FullDisk()
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(archive, "open", fake_open, raising=False)
    with pytest.raises(ArchiveError, match="could not extract: No space left on device") as ei:
        extract_zip(z, tmp_path / "out")
    assert isinstance(ei.value.__cause__, OSError)
    assert ei.value.__cause__.errno == errno.ENOSPC
    assert opened == 3
    assert_nothing_left(tmp_path / "out")


# --- property test -----------------------------------------------------------------

SEGMENTS = ["..", ".", "", "/", "\\", "C:", "a", "ü", "x" * 250, ".png", "__MACOSX", " "]
names = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=8).map("".join)


@settings(max_examples=100, deadline=None)
@given(st.lists(names, min_size=1, max_size=4))
def test_extraction_never_escapes(member_names: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        entries: list[Entry] = [
            (zipfile.ZipInfo(n), b"" if n.endswith(("/", "\\")) else b"data") for n in member_names
        ]
        z = make_zip(base / "p.zip", entries)
        dest = base / "sub" / "out"
        try:
            extract_zip(z, dest)
        except ArchiveError:
            event("refused")
            assert_nothing_left(dest)
        else:
            event("extracted")
            root = dest.resolve()
            for dirpath, dirnames, filenames in os.walk(dest):
                for f in filenames + dirnames:
                    assert Path(dirpath, f).resolve().is_relative_to(root)
            assert_nothing_left(base / "sub" / "never")
        # Nothing may appear anywhere else in the sandbox either.
        assert {p.name for p in base.iterdir()} <= {"p.zip", "sub"}


# --- find_dataset_root -------------------------------------------------------------


def test_find_root_descends_single_folders_ignoring_junk(tmp_path: Path) -> None:
    (tmp_path / "a" / "b" / "cats").mkdir(parents=True)
    (tmp_path / "a" / "b" / "dogs").mkdir()
    (tmp_path / "__MACOSX").mkdir()
    (tmp_path / ".DS_Store").write_bytes(b"")
    (tmp_path / "a" / "Thumbs.db").write_bytes(b"")
    assert find_dataset_root(tmp_path) == tmp_path / "a" / "b"


def test_find_root_stops_at_train(tmp_path: Path) -> None:
    (tmp_path / "x" / "train" / "cat").mkdir(parents=True)
    assert find_dataset_root(tmp_path) == tmp_path / "x"
    (tmp_path / "x" / "test" / "cat").mkdir(parents=True)
    assert find_dataset_root(tmp_path) == tmp_path / "x"


def test_find_root_stops_at_single_file_and_empty(tmp_path: Path) -> None:
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "a.png").write_bytes(b"")
    assert find_dataset_root(tmp_path) == tmp_path / "only"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert find_dataset_root(empty) == empty


def test_find_root_does_not_follow_symlinks(tmp_path: Path) -> None:
    (tmp_path / "real" / "cats").mkdir(parents=True)
    (tmp_path / "real" / "dogs").mkdir()
    top = tmp_path / "top"
    top.mkdir()
    (top / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    assert find_dataset_root(top) == top
