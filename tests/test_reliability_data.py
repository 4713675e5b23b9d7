"""RELIABILITY.md, "Data sets": zip uploads and folders met through the app (check_data, start_training,
FishcatApp.import_zip, quarantine_files) and the CLI.

Archive rules themselves are unit-tested in tests/test_archive.py (including the property test
test_extraction_never_escapes: no generated entry name ever lands outside the target) and folder
scanning in tests/test_data.py; here the user-facing outcome is checked: a gr.Error / one-line CLI error
naming the problem, nothing written outside the app's data folder, nothing of the user's deleted, and
the app still answering predictions afterwards.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import zipfile
from pathlib import Path

import pytest

import app as webapp
from _reliability import (
    assert_one_line_errors,
    assert_still_serving,
    encode,
    gr_message,
    make_checkpoint,
    make_zip,
    new_app,
    picture,
    train_in_app,
    tree,
    write,
    zip_folder,
)
from fishcat import archive, cli
from fishcat.checkpoint import load_checkpoint
from fishcat.data import QUARANTINE_DIR, scan_dataset

ZIP = webapp.ZIP
FOLDER = webapp.FOLDER


@pytest.fixture
def fc(tmp_path: Path):
    """An app with a model, its folders under tmp_path/app, and a 'Gradio temp cache' next to it."""
    ckpt = make_checkpoint(tmp_path / "first.pt", ("cat", "fish"), seed=1)
    return new_app(tmp_path / "app", ckpt)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    return write(tmp_path / "probe.png", encode(picture(), "PNG"))


def upload(tmp_path: Path, name: str, entries, **kw) -> Path:
    """A zip as Gradio hands it over: a file in its temp cache."""
    return make_zip(tmp_path / "gradio-tmp" / name, entries, **kw)


def book_entries(gen, tmp_path: Path, prefix: str = "", counts=(6, 2, 2), classes=("cat", "fish")) -> list[tuple[str, bytes]]:
    root = gen.make_book_dataset(tmp_path / f"src-{len(prefix)}-{counts}", classes=classes, counts=counts)
    return zip_folder(root, Path(), prefix)


def check_zip(fc, path: Path):
    return webapp.check_data(fc, ZIP, "", str(path), None, 0)


def assert_contained(fc, tmp_path: Path, before: dict[str, int]) -> None:
    """Nothing appeared or changed outside the app's data folder; no extracted set or kept upload remains."""
    after = {k: v for k, v in tree(tmp_path).items() if not k.startswith("app/data/")}
    assert after == {k: v for k, v in before.items() if not k.startswith("app/data/")}
    datasets = fc.data_dir / "datasets"
    assert not datasets.exists() or list(datasets.iterdir()) == []
    uploads = fc.data_dir / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []


# ---------------------------------------------------------------- hostile archives


def _symlink_entry() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("train/cat/link.png")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


HOSTILE = {
    "dot-dot": ("../../x.png", r"contains '\.\.'"),
    "dot-dot-inside": ("train/cat/../../../x.png", r"contains '\.\.'"),
    "absolute": ("/tmp/fishcat-evil/x.png", r"absolute path"),
    "drive-backslash": ("C:\\Users\\x.png", r"drive letter"),
    "drive-slash": ("C:/x.png", r"drive letter"),
    "backslash-dot-dot": ("..\\..\\x.png", r"contains '\.\.'"),
    "symlink": (None, r"is a symlink"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_zip_is_refused_whole(fc, tmp_path: Path, gen, image: Path, case: str) -> None:
    name, reason = HOSTILE[case]
    entries = book_entries(gen, tmp_path, "set/")
    entries.insert(len(entries) // 2, (_symlink_entry(), b"/etc/passwd") if name is None else (name, encode(picture(), "PNG")))
    z = upload(tmp_path, f"{case}.zip", entries)
    before = tree(tmp_path)
    message = gr_message(check_zip, fc, z, match=reason)
    assert f"-{case}.zip: entry " in message  # names the upload (as kept in data/uploads) and the entry
    # Train with the same upload: refused the same way, no run starts.
    gr_message(webapp.start_training, fc, ZIP, "", str(z), None, "simplenet", 1, 0.01, 8, 0, match=reason)
    assert fc.runner.snapshot() is None
    assert_contained(fc, tmp_path, before)
    assert not Path("/tmp/fishcat-evil").exists()
    assert_still_serving(fc, image, {"cat", "fish"})


def test_zip_bomb_is_refused_before_extraction(fc, tmp_path: Path, gen, image: Path) -> None:
    entries = book_entries(gen, tmp_path, "set/") + [("set/train/cat/huge.png", bytes(20 * 1024**2))]  # ~1000:1
    z = upload(tmp_path, "bomb.zip", entries)
    assert z.stat().st_size < 200_000
    before = tree(tmp_path)
    gr_message(check_zip, fc, z, match=r"compression ratio of \d+, more than the limit of 200 \(zip bomb\?\)")
    assert_contained(fc, tmp_path, before)
    assert_still_serving(fc, image)


def test_zip_member_over_size_limit_is_refused(fc, tmp_path: Path, image: Path) -> None:
    # A header that declares 3 GB: checked from the central directory, nothing is decompressed.
    path = tmp_path / "gradio-tmp" / "liar.zip"
    make_zip(path, [("train/cat/a.png", b"x" * 100)])
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("train/cat/b.png", b"y" * 100)
        zf.getinfo("train/cat/b.png").file_size = 3 * 1024**3
    before = tree(tmp_path)
    gr_message(check_zip, fc, path, match=r"is 3221225472 bytes, more than the limit")
    assert_contained(fc, tmp_path, before)
    assert_still_serving(fc, image)


def test_zip_with_too_many_files_is_refused(fc, tmp_path: Path, image: Path) -> None:
    """The '100k tiny files' row, at the real limit: 20,001 empty entries (the count check comes first)."""
    path = tmp_path / "gradio-tmp" / "many.zip"
    path.parent.mkdir(parents=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for i in range(20_001):
            zf.writestr(f"train/cat/{i}.png", b"")
    before = tree(tmp_path)
    gr_message(check_zip, fc, path, match=r"has 20001 entries, more than the limit of 20000")
    assert_contained(fc, tmp_path, before)
    assert_still_serving(fc, image)


def test_encrypted_zip_is_refused(fc, tmp_path: Path, gen, image: Path) -> None:
    path = upload(tmp_path, "secret.zip", book_entries(gen, tmp_path))
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("train/cat/locked.png", b"ciphertext")
        zf.getinfo("train/cat/locked.png").flag_bits |= 0x1
    before = tree(tmp_path)
    gr_message(check_zip, fc, path, match=r"secret\.zip: entry 'train/cat/locked\.png' is encrypted")
    assert_contained(fc, tmp_path, before)
    assert_still_serving(fc, image)


@pytest.mark.parametrize("content", [b"", b"just some notes, renamed to .zip\n", b"PK\x03\x04 broken"])
def test_not_a_zip_is_refused(fc, tmp_path: Path, image: Path, content: bytes) -> None:
    path = write(tmp_path / "gradio-tmp" / "photos.zip", content)
    before = tree(tmp_path)
    gr_message(check_zip, fc, path, match=r"photos\.zip: is not a valid zip file")
    assert_contained(fc, tmp_path, before)
    assert_still_serving(fc, image)


# ---------------------------------------------------------------- junk and odd names


def test_junk_is_ignored_and_odd_names_are_sanitised(fc, tmp_path: Path, gen) -> None:
    png = encode(picture(), "PNG")
    long_name = "ß" * 150 + "y" * 150 + ".png"  # 300 characters, 450 bytes
    entries = book_entries(gen, tmp_path, "holiday/") + [
        ("__MACOSX/holiday/train/cat/._cat_000.png", b"\x00\x05\x16\x07 resource fork"),
        ("holiday/train/cat/._cat_000.png", b"\x00\x05\x16\x07"),
        ("holiday/.DS_Store", b"\x00\x00\x00\x01Bud1"),
        ("holiday/train/Thumbs.db", b"thumbs"),
        ("holiday/train/desktop.ini", b"[.ShellClassInfo]"),
        ("holiday/.git/config", b"[core]"),
        ("holiday/train/.hidden/x.png", png),
        ("holiday/val/.cache/", b""),
        ("holiday/train/cat/猫 🐟.png", png),
        (f"holiday/train/fish/{long_name}", png),
    ]
    z = upload(tmp_path, "my holiday (2).zip", entries)
    before = tree(tmp_path)
    summary, thumbs, root, corrupt, _ = check_zip(fc, z)
    root = Path(root)
    ds_dir = fc.data_dir / "datasets"
    assert root.parent.parent == ds_dir and root.name == "holiday"  # descended into the lone folder
    assert root.parent.name.endswith("-my_holiday__2")  # the upload's name made safe
    ds = scan_dataset(root)
    assert ds.classes == ["cat", "fish"]
    assert ds.counts()["train"] == {"cat": 7, "fish": 7}
    assert corrupt == []
    assert "**cat**, **fish**" in summary and "every image decodes" in summary
    names = {p.name for p in root.rglob("*")}
    assert not names & {"__MACOSX", "._cat_000.png", ".DS_Store", "Thumbs.db", "desktop.ini", ".git", ".hidden", ".cache"}
    assert "猫 🐟.png" in names
    long = [n for n in names if n.startswith("ß")]
    assert len(long) == 1 and long[0].endswith(".png") and len(long[0].encode()) <= 200
    # Everything new is inside the app's data folder; the upload in Gradio's cache is untouched.
    new = set(tree(tmp_path)) - set(before)
    assert new and all(p.startswith("app/data/") for p in new)
    assert tree(tmp_path / "gradio-tmp") == {k.removeprefix("gradio-tmp/"): v for k, v in before.items() if k.startswith("gradio-tmp/")}


# ---------------------------------------------------------------- layouts that cannot be trained


def _layout(gen, root: Path, case: str) -> tuple[Path, str]:
    """(data set root, regex for the message, which must name the folder at fault)."""
    if case == "flat":
        for i in range(4):
            gen.write_image(root / f"img_{i}.png", (200, 40, 40), seed=i)
        return root, rf"^{root}: no class folders \(4 images lie directly in it\)"
    if case == "one class":
        gen.make_class_folders(root, {"cat": 4})
        return root, rf"^{root}: found 1 class \(cat\); need at least 2 class folders"
    if case == "empty class":
        gen.make_book_dataset(root, counts=(3, 1, 1))
        (root / "val" / "dog").mkdir()
        return root, rf"^{root / 'val' / 'dog'}: class folder has no images"
    if case == "classes differ":
        gen.make_book_dataset(root, counts=(3, 1, 1))
        (root / "test" / "fish").rename(root / "test" / "fishes")
        return root, rf"^{root / 'test'}: classes \['cat', 'fishes'\] differ from train/ classes \['cat', 'fish'\]"
    if case == "val without train":
        gen.make_class_folders(root / "val", {"cat": 2, "fish": 2})
        return root, rf"^{root}: has val/ but no train/ folder"
    if case == "empty folder":
        root.mkdir(parents=True)
        return root, rf"^{root}: no class folders"
    if case == "missing folder":
        return root, rf"^{root}: folder not found"
    raise AssertionError(case)


LAYOUTS = ["flat", "one class", "empty class", "classes differ", "val without train", "empty folder", "missing folder"]


@pytest.mark.parametrize("case", LAYOUTS)
def test_unusable_folder_gets_a_message_naming_the_folder(fc, tmp_path: Path, gen, image: Path, case: str) -> None:
    root, message = _layout(gen, tmp_path / "mine" / case.replace(" ", "-"), case)
    before = tree(tmp_path / "mine")
    gr_message(webapp.check_data, fc, FOLDER, str(root), None, None, 0, match=message)
    gr_message(webapp.start_training, fc, FOLDER, str(root), None, None, "simplenet", 1, 0.01, 8, 0, match=message)
    assert fc.runner.snapshot() is None
    assert tree(tmp_path / "mine") == before
    assert_still_serving(fc, image)


@pytest.mark.parametrize("case", ["flat", "one class", "empty class", "classes differ"])
def test_unusable_zip_gets_a_message_naming_the_folder(fc, tmp_path: Path, gen, case: str) -> None:
    src, _ = _layout(gen, tmp_path / "src" / "set", case)
    entries = zip_folder(src, Path(), "set/")
    if case == "empty class":
        entries.append(("set/val/dog/", b""))  # zips keep empty folders as folder entries
    z = upload(tmp_path, "set.zip", entries)
    message = gr_message(check_zip, fc, z)
    extracted = next((fc.data_dir / "datasets").iterdir()) / "set"
    expected = {
        "flat": rf"^{extracted}: no class folders",
        # The lone folder set/ is descended into (find_dataset_root), so the folder named is set/cat.
        "one class": rf"^{extracted / 'cat'}: no class folders \(4 images lie directly in it\)",
        "empty class": rf"^{extracted / 'val' / 'dog'}: class folder has no images",
        "classes differ": rf"^{extracted / 'test'}: classes",
    }[case]
    assert re.search(expected, message), message


@pytest.mark.parametrize("case", LAYOUTS)
def test_cli_train_on_unusable_folder_is_one_line(tmp_path: Path, gen, capsys, case: str) -> None:
    root, message = _layout(gen, tmp_path / case.replace(" ", "-"), case)
    assert cli.main(["train", "--data", str(root), "--model", "simplenet", "--epochs", "1", "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    (line,) = assert_one_line_errors(err, count=1)
    assert re.search(message.replace("^", "^error: "), line), line
    assert not (tmp_path / "x.pt").exists()


# ---------------------------------------------------------------- missing splits, corrupt files, tiny and skewed sets


def test_missing_val_and_test_are_carved_and_stated(fc, tmp_path: Path, gen) -> None:
    root = gen.make_class_folders(tmp_path / "plain", {"cat": 10, "fish": 10})
    summary, *_ = webapp.check_data(fc, FOLDER, str(root), None, None, 0)
    assert "no train/val/test folders" in summary
    assert "no test/ folder: held out 4 images of train for testing (seed 0)" in summary
    assert "no val/ folder: held out 2 images of train for validation (seed 0)" in summary
    snap = train_in_app(fc, root)
    assert snap.state == "finished" and snap.result.test.n == 4
    meta = load_checkpoint(snap.checkpoint).meta
    assert any("held out" in note for note in meta["data"]["notes"])  # recorded with the model


def test_only_test_missing(fc, tmp_path: Path, gen) -> None:
    root = gen.make_book_dataset(tmp_path / "book", counts=(6, 2, 0), splits=("train", "val"))
    summary, *_ = webapp.check_data(fc, FOLDER, str(root), None, None, 0)
    assert "no test/ folder: held out" in summary and "no val/ folder" not in summary


def test_corrupt_files_are_reported_quarantined_never_deleted(fc, tmp_path: Path, gen) -> None:
    root = gen.make_book_dataset(tmp_path / "book", counts=(6, 2, 2))
    gen.write_truncated_jpeg(root / "train" / "cat" / "cut.jpg")
    gen.write_text_as_png(root / "val" / "fish" / "notes.png")
    write(root / "train" / "fish" / "empty.png", b"")
    before = tree(root)
    summary, _, current, corrupt, button = webapp.check_data(fc, FOLDER, str(root), None, None, 0)
    assert "3 file(s) are not readable images and will be skipped" in summary
    assert {Path(p).name for p in corrupt} == {"cut.jpg", "notes.png", "empty.png"}
    assert button["visible"] is True
    assert tree(root) == before  # checking never touches the files
    # Training without quarantining: the run skips and reports them.
    snap = train_in_app(fc, root)
    assert snap.state == "finished"
    assert {p.name for p, _ in snap.result.skipped} == {"cut.jpg", "notes.png", "empty.png"}
    assert tree(root) == before
    # Quarantine: moved under .quarantine with the same relative path, byte for byte; nothing deleted.
    webapp.quarantine_files(current, corrupt)
    after = tree(root)
    assert len(after) == len(before)
    for rel, size in before.items():
        moved = f"{QUARANTINE_DIR}/{rel}"
        assert after.get(rel, after.get(moved)) == size
    assert {k for k in after if k.startswith(QUARANTINE_DIR)} == {
        f"{QUARANTINE_DIR}/train/cat/cut.jpg", f"{QUARANTINE_DIR}/val/fish/notes.png", f"{QUARANTINE_DIR}/train/fish/empty.png"
    }
    summary, _, _, corrupt, _ = webapp.check_data(fc, FOLDER, str(root), None, None, 0)
    assert corrupt == [] and "every image decodes" in summary  # the quarantine is never read as data


def test_cli_clean_quarantines(tmp_path: Path, gen, capsys) -> None:
    root = gen.make_book_dataset(tmp_path / "book", counts=(3, 1, 1))
    gen.write_text_as_png(root / "train" / "cat" / "notes.png")
    before = tree(root)
    assert cli.main(["clean", str(root)]) == 0
    out = capsys.readouterr().out
    assert "1 file(s) moved to" in out and "nothing was deleted" in out
    assert sorted(tree(root).values()) == sorted(before.values())


def test_one_image_per_class_trains(fc, tmp_path: Path, gen, image: Path) -> None:
    root = gen.make_class_folders(tmp_path / "tiny", {"cat": 1, "fish": 1})
    summary, *_ = webapp.check_data(fc, FOLDER, str(root), None, None, 0)
    assert summary.count("has only 1 training image(s)") == 2
    assert "no validation images" in summary
    snap = train_in_app(fc, root)
    assert snap.state == "finished", snap.error
    assert fc.active.predictor.checkpoint.path == snap.checkpoint  # the new model answers now
    assert_still_serving(fc, image, {"cat", "fish"})


def test_1000_to_1_imbalance_trains_and_is_reported(fc, tmp_path: Path, gen, image: Path) -> None:
    root = tmp_path / "skewed"
    png = encode(gen.colour_image((200, 40, 40), 1, size=(8, 8)), "PNG")
    for i in range(1000):
        write(root / "cat" / f"{i:04d}.png", png)
    gen.write_image(root / "fish" / "only.png", (40, 60, 200), seed=2)
    summary, *_ = webapp.check_data(fc, FOLDER, str(root), None, None, 0)
    assert "class imbalance in train/: cat 700, fish 1 (700:1)" in summary
    assert "accuracy alone will flatter the model" in summary
    snap = train_in_app(fc, root, epochs=2, batch_size=64)
    assert snap.state == "finished", snap.error
    assert snap.result.dataset.warnings()[0].startswith("class imbalance")
    assert_still_serving(fc, image, {"cat", "fish"})


# ---------------------------------------------------------------- where uploads live, disk full


def test_upload_is_copied_out_of_gradio_cache(fc, tmp_path: Path, gen) -> None:
    """Check data, then Gradio deletes its temp file: Train (which still passes the upload) works, from one copy."""
    z = upload(tmp_path, "pets.zip", book_entries(gen, tmp_path, "", counts=(4, 2, 2)))
    _, _, current, _, _ = check_zip(fc, z)
    assert Path(current).is_relative_to(fc.data_dir / "datasets")
    kept = list((fc.data_dir / "uploads").iterdir())
    assert len(kept) == 1 and kept[0].read_bytes() == z.read_bytes()
    z.unlink()
    z.parent.rmdir()
    snap, root = webapp.start_training(fc, ZIP, "", str(z), current, "simplenet", 2, 0.01, 8, 0)
    assert root == current
    fc.runner.join(60)
    snap = fc.runner.snapshot()
    assert snap.state == "finished", snap.error
    assert len(list((fc.data_dir / "datasets").iterdir())) == 1  # not extracted a second time


class FullDisk:
    def __init__(self, real):
        self.real = real

    def write(self, data):
        self.real.write(bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()


def test_disk_full_during_extraction(fc, tmp_path: Path, gen, image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    z = upload(tmp_path, "big.zip", book_entries(gen, tmp_path))
    real_open = open
    calls = []

    def fake_open(path, mode="r", *args, **kwargs):
        calls.append(path)
        if "x" in mode and len(calls) >= 5:  # the fifth extracted file hits a full disk
            return FullDisk(real_open(path, mode, *args, **kwargs))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(archive, "open", fake_open, raising=False)
    before = tree(tmp_path)
    gr_message(check_zip, fc, z, match=r"big\.zip: could not extract: No space left on device")
    assert len(calls) >= 5
    assert_contained(fc, tmp_path, before)  # no half-extracted folder, no .tmp- folder, no kept copy
    assert not any(p.name.startswith(".tmp-") for p in (fc.data_dir / "datasets").glob("*"))
    monkeypatch.undo()
    assert_still_serving(fc, image)
    check_zip(fc, z)  # with space again the same upload works


def test_disk_full_while_storing_the_upload(fc, tmp_path: Path, gen, image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    z = upload(tmp_path, "big.zip", book_entries(gen, tmp_path))

    def full_copy(src, dst):
        Path(dst).write_bytes(Path(src).read_bytes()[:100])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(webapp.shutil, "copyfile", full_copy)
    before = tree(tmp_path)
    gr_message(check_zip, fc, z, match=r"^Could not store the upload: No space left on device$")
    assert_contained(fc, tmp_path, before)  # the partial copy is gone
    assert z.stat().st_size == before[f"gradio-tmp/{z.name}"]  # the upload itself is intact
    assert_still_serving(fc, image)
