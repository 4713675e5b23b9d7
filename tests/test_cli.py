"""End-to-end tests of `python -m fishcat` in subprocesses, on a generated data set.

Python + torch take a few seconds to start, so the commands that do not depend on each other
run concurrently (one module fixture launches them all and the tests read their results).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fishcat.cli import build_parser, main
from fishcat.paths import DEFAULT_CHECKPOINT, PROJECT_ROOT

EPOCH_LINE = re.compile(r"^Epoch: 0, Training Loss: \d+\.\d\d, Validation Loss: \d+\.\d\d, accuracy = \d\.\d\d")
ANY_EPOCH_LINE = re.compile(r"^Epoch: (\d+), Training Loss: \d+\.\d\d, Validation Loss: \d+\.\d\d, accuracy = \d\.\d\d")
TEST_LINE = re.compile(r"^test accuracy = (\d\.\d{4}) on (\d+) images")
TIMEOUT = 240


@dataclass
class Run:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"fishcat {' '.join(self.args)} -> {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PROJECT_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["CUDA_VISIBLE_DEVICES"] = ""  # CPU, as the tests promise
    env.pop("PYTHONWARNINGS", None)
    return env


def fishcat_many(*commands: list[str]) -> list[Run]:
    """Run several `python -m fishcat ...` at once; results in the same order."""
    procs = [
        (args, subprocess.Popen(
            [sys.executable, "-m", "fishcat", *args],
            cwd=PROJECT_ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ))
        for args in commands
    ]
    runs = []
    for args, proc in procs:
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        runs.append(Run(list(args), proc.returncode, out, err))
    return runs


def fishcat(*args: str) -> Run:
    return fishcat_many(list(args))[0]


def assert_user_error(run: Run) -> None:
    assert run.returncode not in (0, None), str(run)
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout, str(run)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, str(run)
    assert lines[0].startswith("error:"), str(run)


@dataclass
class Session:
    data: Path
    checkpoint: Path
    train: Run
    runs: dict[str, Run]
    dirty: Path  # a copy of the data set with corrupt files, cleaned by the `clean` run
    corrupt: list[Path]


@pytest.fixture(scope="module")
def cli(shared_book_data: Path, tmp_path_factory: pytest.TempPathFactory, gen) -> Session:
    work = tmp_path_factory.mktemp("cli")
    ckpt = work / "X.pt"
    train_run = fishcat(
        "train", "--data", str(shared_book_data), "--model", "simplenet", "--epochs", "2", "--batch-size", "8", "--out", str(ckpt)
    )
    assert train_run.returncode == 0, str(train_run)

    dirty = work / "dirty"
    shutil.copytree(shared_book_data, dirty)
    corrupt = [
        gen.write_truncated_jpeg(dirty / "train" / "cat" / "cut.jpg"),
        gen.write_text_as_png(dirty / "val" / "fish" / "notes.png"),
    ]
    cat_image = shared_book_data / "test" / "cat" / "cat_000.png"
    fish_image = shared_book_data / "test" / "fish" / "fish_001.jpg"
    not_image = work / "readme.png"
    not_image.write_text("not an image")
    garbage_ckpt = work / "garbage.pt"
    garbage_ckpt.write_text("garbage " * 100)

    commands = {
        "predict": ["predict", str(cat_image), str(fish_image), "--checkpoint", str(ckpt), "--json"],
        "evaluate": ["evaluate", "--data", str(shared_book_data), "--checkpoint", str(ckpt), "--json"],
        "clean": ["clean", str(dirty)],
        "err_missing_folder": ["train", "--data", str(work / "no-such-folder"), "--model", "simplenet", "--epochs", "1", "--out", str(work / "never.pt")],
        "err_not_an_image": ["predict", str(not_image), "--checkpoint", str(ckpt)],
        "err_bad_checkpoint": ["predict", str(cat_image), "--checkpoint", str(garbage_ckpt)],
    }
    if DEFAULT_CHECKPOINT.is_file():
        commands["default"] = ["predict", str(gen.cat_photo), "--json"]
    runs = dict(zip(commands, fishcat_many(*commands.values())))
    return Session(shared_book_data, ckpt, train_run, runs, dirty, corrupt)


# ---------------------------------------------------------------- train


def test_train_prints_the_books_lines_and_saves(cli: Session) -> None:
    lines = cli.train.stdout.splitlines()
    assert any(EPOCH_LINE.match(line) for line in lines), cli.train.stdout
    epochs = [int(m.group(1)) for line in lines if (m := ANY_EPOCH_LINE.match(line))]
    assert epochs == [0, 1]
    tests = [m for line in lines if (m := TEST_LINE.match(line))]
    assert len(tests) == 1, cli.train.stdout
    assert 0 <= float(tests[0].group(1)) <= 1 and tests[0].group(2) == "8"
    assert any(line.startswith("confusion") for line in lines)
    assert any(line.startswith("saved ") and str(cli.checkpoint) in line for line in lines)
    assert "classes: cat, fish" in cli.train.stdout
    assert cli.checkpoint.is_file()
    assert "Traceback" not in cli.train.stderr
    assert [p.name for p in cli.checkpoint.parent.glob(".*.tmp")] == []

    from fishcat.checkpoint import load_checkpoint

    ckpt = load_checkpoint(cli.checkpoint, device="cpu")
    assert ckpt.model_name == "simplenet" and ckpt.classes == ["cat", "fish"]
    assert len(ckpt.meta["metrics"]["history"]) == 2


# ---------------------------------------------------------------- predict / evaluate / clean


def _check_prediction(obj: dict, classes: set[str]) -> None:
    assert set(obj) >= {"file", "label", "probabilities"}
    assert set(obj["probabilities"]) == classes
    assert obj["label"] in classes
    assert obj["label"] == max(obj["probabilities"], key=obj["probabilities"].get)
    assert math.isclose(sum(obj["probabilities"].values()), 1.0, abs_tol=1e-5)


def test_predict_json(cli: Session) -> None:
    run = cli.runs["predict"]
    assert run.returncode == 0, str(run)
    rows = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    assert len(rows) == 2
    assert [Path(r["file"]).name for r in rows] == ["cat_000.png", "fish_001.jpg"]
    for r in rows:
        _check_prediction(r, {"cat", "fish"})


def test_predict_text_in_process(cli: Session, capsys) -> None:
    image = cli.data / "test" / "cat" / "cat_000.png"
    assert main(["predict", str(image), "--checkpoint", str(cli.checkpoint)]) == 0
    out = capsys.readouterr().out
    assert re.match(r"^.*cat_000\.png: (cat|fish)", out), out
    assert re.search(r"\(cat \d\.\d{3}, fish \d\.\d{3}\)", out), out


def test_predict_with_the_default_checkpoint(cli: Session) -> None:
    if "default" not in cli.runs:
        pytest.skip(f"{DEFAULT_CHECKPOINT} is not there yet (it is built by the training script)")
    run = cli.runs["default"]
    assert run.returncode == 0, str(run)
    (row,) = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    _check_prediction(row, set(row["probabilities"]))
    if set(row["probabilities"]) == {"cat", "fish"}:
        assert row["label"] == "cat", f"the shipped model calls the cat photo {row}"


def test_evaluate_json(cli: Session) -> None:
    run = cli.runs["evaluate"]
    assert run.returncode == 0, str(run)
    (result,) = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    assert result["n"] == 8
    assert 0 <= result["accuracy"] <= 1
    assert set(result["per_class"]) == {"cat", "fish"}
    assert sum(map(sum, result["confusion"])) == 8
    assert [sum(row) for row in result["confusion"]] == [4, 4]
    assert result["skipped"] == 0


def test_clean_moves_corrupt_files_to_quarantine(cli: Session) -> None:
    run = cli.runs["clean"]
    assert run.returncode == 0, str(run)
    q = cli.dirty / ".quarantine"
    for p in cli.corrupt:
        assert not p.exists()
        assert (q / p.relative_to(cli.dirty)).is_file()
    assert "2 file(s) moved" in run.stdout and "nothing was deleted" in run.stdout
    assert sum(1 for p in cli.dirty.rglob("*") if p.is_file()) == 40 + 2


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("name", ["err_missing_folder", "err_not_an_image", "err_bad_checkpoint"])
def test_errors_are_one_line_without_traceback(cli: Session, name: str) -> None:
    assert_user_error(cli.runs[name])


def test_error_messages_say_what_is_wrong(cli: Session) -> None:
    assert "no-such-folder" in cli.runs["err_missing_folder"].stderr
    assert "readme.png" in cli.runs["err_not_an_image"].stderr
    assert "garbage.pt" in cli.runs["err_bad_checkpoint"].stderr
    assert not (cli.checkpoint.parent / "never.pt").exists()


# ---------------------------------------------------------------- help and arguments (in process)


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["predict", "--help"], ["evaluate", "--help"], ["clean", "--help"]])
def test_help_exits_0(args: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m fishcat")


def test_bad_arguments_exit_with_usage(capsys) -> None:
    for args in ([], ["fly"], ["train"], ["train", "--data", "x", "--model", "nope"], ["train", "--data", "x", "--epochs", "many"]):
        with pytest.raises(SystemExit) as info:
            main(args)
        assert info.value.code == 2, args
    assert "usage:" in capsys.readouterr().err


def test_parser_accepts_every_model() -> None:
    from fishcat.models import DEFAULT_MODEL, MODELS

    assert build_parser().parse_args(["train", "--data", "d"]).model == DEFAULT_MODEL
    for name in MODELS:
        assert build_parser().parse_args(["train", "--data", "d", "--model", name]).model == name


def test_clean_dry_run_in_process(book_data: Path, gen, capsys) -> None:
    bad = gen.write_text_as_png(book_data / "train" / "cat" / "x.png")
    assert main(["clean", str(book_data), "--dry-run"]) == 0
    assert bad.exists() and "corrupt: x.png" in capsys.readouterr().out
    assert main(["clean", str(book_data)]) == 0
    assert not bad.exists()
    assert main(["clean", str(book_data)]) == 0
    assert "no corrupt images" in capsys.readouterr().out


def test_train_bad_settings_in_process(book_data: Path, capsys, tmp_path: Path) -> None:
    assert main(["train", "--data", str(book_data), "--model", "simplenet", "--lr", "100", "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "learning rate" in err
    assert not (tmp_path / "x.pt").exists()


def test_evaluate_missing_folder_in_process(cli: Session, tmp_path: Path, capsys) -> None:
    assert main(["evaluate", "--data", str(tmp_path / "no-such-folder"), "--checkpoint", str(cli.checkpoint)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "no-such-folder" in err and len(err.strip().splitlines()) == 1


def test_evaluate_class_mismatch_in_process(cli: Session, tmp_path: Path, gen, capsys) -> None:
    gen.make_class_folders(tmp_path / "other", {"dog": 2, "bird": 2})
    assert main(["evaluate", "--data", str(tmp_path / "other"), "--checkpoint", str(cli.checkpoint)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "do not match" in err
