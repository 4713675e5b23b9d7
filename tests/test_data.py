"""Tests for fishcat.data: layouts, class names, carved splits, junk, errors, corrupt files."""

from __future__ import annotations

from pathlib import Path

import pytest

from fishcat.data import (
    QUARANTINE_DIR,
    SPLITS,
    DatasetError,
    find_corrupt,
    list_images,
    quarantine,
    scan_class_folder,
    scan_dataset,
)
from fishcat.images import is_hidden


def _paths(ds, split: str) -> list[Path]:
    return [s.path for s in ds.splits[split]]


def _assert_labels_match_folders(ds) -> None:
    for split in SPLITS:
        for s in ds.splits[split]:
            assert s.path.parent.name == ds.classes[s.label], s


# ---------------------------------------------------------------- layouts


def test_book_layout(shared_book_data: Path) -> None:
    ds = scan_dataset(shared_book_data)
    assert ds.root == shared_book_data
    assert ds.classes == ["cat", "fish"]
    assert ds.counts() == {s: {"cat": n, "fish": n} for s, n in zip(SPLITS, (12, 4, 4))}
    assert ds.notes == []  # nothing inferred
    assert ds.warnings() == []
    _assert_labels_match_folders(ds)
    for split in SPLITS:
        assert all(s.path.parent.parent == shared_book_data / split for s in ds.splits[split])
    assert len(ds.all_samples()) == 40
    assert len({s.path for s in ds.all_samples()}) == 40
    # both formats are picked up
    assert {s.path.suffix for s in ds.all_samples()} == {".png", ".jpg"}


def test_three_classes_from_folder_names(tmp_path: Path, gen) -> None:
    root = gen.make_book_dataset(tmp_path / "d", classes=("cat", "fish", "green"), counts=(5, 2, 2))
    ds = scan_dataset(root)
    assert ds.classes == ["cat", "fish", "green"]
    assert ds.counts()["train"] == {"cat": 5, "fish": 5, "green": 5}
    assert {s.label for s in ds.splits["test"]} == {0, 1, 2}
    _assert_labels_match_folders(ds)


def test_class_names_are_folder_names_sorted(tmp_path: Path, gen) -> None:
    gen.make_class_folders(tmp_path / "d", {"Zebra fish": 3, "alley cat": 3, "Ångström": 3})
    ds = scan_dataset(tmp_path / "d")
    assert sorted(ds.classes) == sorted(["Zebra fish", "alley cat", "Ångström"])
    assert ds.classes == sorted(ds.classes)
    _assert_labels_match_folders(ds)


def test_missing_val_and_test_are_carved_reproducibly(class_folder: Path) -> None:
    a = scan_dataset(class_folder, seed=0)
    b = scan_dataset(class_folder, seed=0)
    c = scan_dataset(class_folder, seed=1)
    all_images = set(list_images(class_folder))
    for ds in (a, b, c):
        counts = ds.counts()
        assert all(counts[s]["cat"] >= 1 and counts[s]["fish"] >= 1 for s in SPLITS), counts
        assert sum(sum(per.values()) for per in counts.values()) == 40
        # a partition: nothing lost, nothing twice
        seen = [p for s in SPLITS for p in _paths(ds, s)]
        assert len(seen) == len(set(seen)) and set(seen) == all_images
        _assert_labels_match_folders(ds)
        notes = " ".join(ds.notes)
        assert "no test/ folder" in notes and "no val/ folder" in notes
        assert "no train/val/test folders" in notes
    for split in SPLITS:
        assert _paths(a, split) == _paths(b, split), f"same seed gave a different {split} split"
    assert any(set(_paths(a, s)) != set(_paths(c, s)) for s in ("val", "test")), "seed did not change the split"
    assert "seed 0" in " ".join(a.notes) and "seed 1" in " ".join(c.notes)


def test_only_val_missing_is_carved_from_train(tmp_path: Path, gen) -> None:
    root = gen.make_book_dataset(tmp_path / "d", counts=(12, 0, 4), splits=("train", "test"))
    ds = scan_dataset(root, seed=3)
    counts = ds.counts()
    assert counts["test"] == {"cat": 4, "fish": 4}  # the real test/ folder is untouched
    assert counts["val"]["cat"] >= 1 and counts["val"]["fish"] >= 1
    assert counts["train"]["cat"] + counts["val"]["cat"] == 12
    assert all(p.parent.parent == root / "train" for p in _paths(ds, "val"))
    assert any("no val/ folder" in n for n in ds.notes)
    assert not any("no test/ folder" in n for n in ds.notes)


def test_plain_class_folder(class_folder: Path) -> None:
    ds = scan_dataset(class_folder)
    assert ds.classes == ["cat", "fish"]
    assert any("no train/val/test folders" in n for n in ds.notes)

    ev = scan_class_folder(class_folder)
    assert ev.classes == ["cat", "fish"]
    assert ev.splits["train"] == [] and ev.splits["val"] == []
    assert len(ev.splits["test"]) == 40
    _assert_labels_match_folders(ev)


def test_scan_class_folder_uses_the_test_split_of_a_book_layout(shared_book_data: Path) -> None:
    ev = scan_class_folder(shared_book_data)
    assert ev.classes == ["cat", "fish"]
    assert len(ev.splits["test"]) == 8
    assert all(p.parent.parent == shared_book_data / "test" for p in _paths(ev, "test"))


def test_nested_folders_inside_a_class_are_read(tmp_path: Path, gen) -> None:
    root = gen.make_class_folders(tmp_path / "d", {"cat": 3, "fish": 3})
    gen.write_image(root / "cat" / "holiday" / "2019" / "x.png", gen.colours["cat"], 5)
    ds = scan_dataset(root)
    assert ds.classes == ["cat", "fish"]
    assert sum(ds.counts()[s]["cat"] for s in SPLITS) == 4


# ---------------------------------------------------------------- junk


def _add_junk(folder: Path, gen) -> None:
    png = gen.encode(gen.colour_image((1, 2, 3), 0), "PNG")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (folder / "desktop.ini").write_text("[.ShellClassInfo]\n")
    for junk_dir in ("__MACOSX/cat", ".git/objects", ".hidden_class", "__MACOSX"):
        (folder / junk_dir).mkdir(parents=True, exist_ok=True)
        (folder / junk_dir / "looks_real.png").write_bytes(png)
        (folder / junk_dir / "._looks_real.png").write_bytes(b"\x00\x05\x16\x07 resource fork")


def test_hidden_junk_is_never_a_class_or_an_image(book_data: Path, gen) -> None:
    before = scan_dataset(book_data)
    _add_junk(book_data, gen)
    for split in SPLITS:
        _add_junk(book_data / split, gen)
        for c in ("cat", "fish"):
            _add_junk(book_data / split / c, gen)
            # a macOS resource fork with real PNG bytes: hidden by name, not by content
            (book_data / split / c / f"._{c}_000.png").write_bytes(gen.encode(gen.colour_image((9, 9, 9), 1), "PNG"))
            (book_data / split / c / "notes.txt").write_text("not an image")
    after = scan_dataset(book_data)
    assert after.classes == ["cat", "fish"]
    assert after.counts() == before.counts()
    for s in after.all_samples():
        assert not is_hidden(s.path.relative_to(book_data)), s.path
        assert s.path.suffix in (".png", ".jpg")
    assert [s.path for s in after.all_samples()] == [s.path for s in before.all_samples()]


def test_hidden_junk_in_a_plain_class_folder(class_folder: Path, gen) -> None:
    _add_junk(class_folder, gen)
    ds = scan_dataset(class_folder)
    assert ds.classes == ["cat", "fish"]
    assert sum(sum(c.values()) for c in ds.counts().values()) == 40
    assert scan_class_folder(class_folder).classes == ["cat", "fish"]


def test_list_images_skips_junk_and_non_images(tmp_path: Path, gen) -> None:
    gen.write_image(tmp_path / "a.png", (1, 2, 3), 0)
    gen.write_image(tmp_path / "B.JPG", (1, 2, 3), 0)
    (tmp_path / "readme.txt").write_text("x")
    _add_junk(tmp_path, gen)
    assert [p.name for p in list_images(tmp_path)] == ["B.JPG", "a.png"]


# ---------------------------------------------------------------- errors


def _error(root: Path, *, expect_in_message: Path, match: str) -> DatasetError:
    with pytest.raises(DatasetError, match=match) as info:
        scan_dataset(root)
    assert str(expect_in_message) in str(info.value)
    return info.value


def test_error_missing_folder(tmp_path: Path) -> None:
    _error(tmp_path / "nope", expect_in_message=tmp_path / "nope", match="not found")
    with pytest.raises(DatasetError, match="not found"):
        scan_class_folder(tmp_path / "nope")


def test_error_a_file_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "f.png").write_bytes(b"x")
    _error(tmp_path / "f.png", expect_in_message=tmp_path / "f.png", match="not a folder")


def test_error_flat_folder_of_images(tmp_path: Path, gen) -> None:
    for i in range(3):
        gen.write_image(tmp_path / f"img{i}.png", (1, 2, 3), i)
    e = _error(tmp_path, expect_in_message=tmp_path, match="no class folders")
    assert "3 images" in str(e)
    with pytest.raises(DatasetError, match="no class folders"):
        scan_class_folder(tmp_path)


def test_error_empty_folder(tmp_path: Path) -> None:
    _error(tmp_path, expect_in_message=tmp_path, match="no class folders")


def test_error_one_class(tmp_path: Path, gen) -> None:
    gen.make_class_folders(tmp_path, {"cat": 4})
    _error(tmp_path, expect_in_message=tmp_path, match="1 class")


def test_error_one_class_in_book_layout(tmp_path: Path, gen) -> None:
    gen.make_class_folders(tmp_path / "train", {"cat": 4})
    _error(tmp_path, expect_in_message=tmp_path / "train", match="1 class")


def test_error_empty_class_folder(book_data: Path) -> None:
    fish = book_data / "val" / "fish"
    for p in fish.iterdir():
        p.unlink()
    (fish / ".DS_Store").write_bytes(b"junk")  # junk does not count as an image
    _error(book_data, expect_in_message=fish, match="no images")


def test_error_class_sets_differ_between_splits(book_data: Path, gen) -> None:
    gen.make_class_folders(book_data / "test", {"dog": 2})
    _error(book_data, expect_in_message=book_data / "test", match="differ")


def test_error_val_without_train(tmp_path: Path, gen) -> None:
    gen.make_class_folders(tmp_path / "val", {"cat": 2, "fish": 2})
    gen.make_class_folders(tmp_path / "test", {"cat": 2, "fish": 2})
    _error(tmp_path, expect_in_message=tmp_path, match="no train/")


# ---------------------------------------------------------------- corrupt files and quarantine


def test_find_corrupt(book_data: Path, gen) -> None:
    truncated = gen.write_truncated_jpeg(book_data / "train" / "cat" / "cut.jpg")
    text = gen.write_text_as_png(book_data / "val" / "fish" / "notes.png")
    progress = []
    bad = find_corrupt(list_images(book_data), on_progress=lambda d, t: progress.append((d, t)))
    assert sorted(p for p, _ in bad) == sorted([truncated, text])
    reasons = dict(bad)
    assert reasons[truncated].startswith("cut.jpg:")
    assert reasons[text].startswith("notes.png:")
    assert progress[-1] == (42, 42)
    assert len(progress) == 42


def test_quarantine_moves_and_never_deletes(book_data: Path, gen) -> None:
    truncated = gen.write_truncated_jpeg(book_data / "train" / "cat" / "cut.jpg")
    text = gen.write_text_as_png(book_data / "test" / "fish" / "notes.png")
    originals = {truncated.resolve(): truncated.read_bytes(), text.resolve(): text.read_bytes()}
    n_files = sum(1 for p in book_data.rglob("*") if p.is_file())

    bad = [p for p, _ in find_corrupt(list_images(book_data))]
    moved = quarantine(book_data, bad)

    q = book_data.resolve() / QUARANTINE_DIR
    assert sorted(dst for _, dst in moved) == sorted([q / "train" / "cat" / "cut.jpg", q / "test" / "fish" / "notes.png"])
    for src, dst in moved:
        assert not src.exists()
        assert dst.read_bytes() == originals[src]
    assert sum(1 for p in book_data.rglob("*") if p.is_file()) == n_files  # moved, not deleted
    # the quarantine is hidden: the data set scans clean and its classes are unchanged
    assert find_corrupt(list_images(book_data)) == []
    ds = scan_dataset(book_data)
    assert ds.classes == ["cat", "fish"]
    assert ds.counts()["train"] == {"cat": 12, "fish": 12}


def test_second_quarantine_of_the_same_name_keeps_both(book_data: Path, gen) -> None:
    bad = book_data / "train" / "cat" / "bad.png"
    gen.write_text_as_png(bad)
    first = bad.read_bytes()
    quarantine(book_data, [bad])
    bad.write_text("a different broken file")
    (_, dst2), = quarantine(book_data, [bad])
    bad.write_text("a third one")
    (_, dst3), = quarantine(book_data, [bad])
    q = book_data.resolve() / QUARANTINE_DIR / "train" / "cat"
    assert (q / "bad.png").read_bytes() == first
    assert dst2 == q / "bad.1.png" and dst2.read_text() == "a different broken file"
    assert dst3 != dst2 and dst3.parent == q and dst3.read_text() == "a third one"
    assert sorted(p.name for p in q.iterdir()) == sorted(["bad.png", "bad.1.png", dst3.name])


def test_quarantine_refuses_files_outside_the_data_set(book_data: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.png"
    outside.write_text("x")
    with pytest.raises(DatasetError, match="not inside"):
        quarantine(book_data, [outside])
    assert outside.exists()


# ---------------------------------------------------------------- warnings and tiny data


def test_warnings_report_imbalance(tmp_path: Path, gen) -> None:
    gen.make_class_folders(tmp_path / "train", {"cat": 20, "fish": 2})
    gen.make_class_folders(tmp_path / "val", {"cat": 2, "fish": 2})
    gen.make_class_folders(tmp_path / "test", {"cat": 2, "fish": 2})
    ds = scan_dataset(tmp_path)
    warnings = ds.warnings()
    imbalance = [w for w in warnings if "imbalance" in w]
    assert len(imbalance) == 1
    assert "10:1" in imbalance[0] and "cat 20" in imbalance[0] and "fish 2" in imbalance[0]
    assert any("'fish'" in w and "only 2" in w for w in warnings)


def test_balanced_data_has_no_imbalance_warning(shared_book_data: Path) -> None:
    assert not any("imbalance" in w for w in scan_dataset(shared_book_data).warnings())


def test_one_image_per_class_still_scans(tmp_path: Path, gen) -> None:
    gen.make_class_folders(tmp_path / "train", {"cat": 1, "fish": 1})
    ds = scan_dataset(tmp_path)
    assert ds.classes == ["cat", "fish"]
    assert ds.counts()["train"] == {"cat": 1, "fish": 1}
    assert ds.splits["val"] == [] and ds.splits["test"] == []
    warnings = " ".join(ds.warnings())
    assert "no validation images" in warnings
    assert "only 1 training image" in warnings
