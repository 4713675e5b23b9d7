"""The real app in a subprocess (`python app.py --port P --checkpoints TMP --data-dir TMP`), driven
through its named API endpoints with gradio_client: /predict, /train (streaming), /stop.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from _app_support import SCREENSHOT_CAT, make_dataset, shared_app  # noqa: E402

pytestmark = pytest.mark.e2e

WAIT_S = 180  # generous: the machine may be busy; no test asserts on timing


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    return shared_app(request, tmp_path_factory)


@pytest.fixture(scope="module")
def client(server) -> Client:
    return Client(server.url, verbose=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("e2e-data") / "catfish")


def collect(job, until=lambda outs: False, timeout: float = WAIT_S) -> list[dict]:
    """The updates a /train job has streamed so far, waiting until it ends or `until(updates)` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outs = job.outputs()
        if job.done() or (outs and until(outs)):
            return list(job.outputs())
        time.sleep(0.1)
    raise TimeoutError(f"/train did not get there in {timeout}s; last updates: {job.outputs()[-2:]}")


def test_predict_rgba_screenshot(client):
    probs = client.predict(handle_file(str(SCREENSHOT_CAT)), api_name="/predict")
    assert isinstance(probs, dict) and set(probs) == {"cat", "fish"}
    assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-4)
    # the UI's own endpoint: the same picture through the Predict tab's handler
    label, verdict, seen, region, card = client.predict(handle_file(str(SCREENSHOT_CAT)), True, api_name="/classify")
    assert label["label"] in ("cat", "fish") and verdict.startswith("## ") and "Answered by" in card
    assert Path(seen).is_file() and Path(region).is_file()


def test_predict_non_image_names_the_file(client, tmp_path):
    text = tmp_path / "shopping-list.png"
    text.write_text("milk, eggs\n" * 20)
    with pytest.raises(AppError, match="shopping-list.png"):
        client.predict(handle_file(str(text)), api_name="/predict")


def test_train_streams_every_epoch(client, server, tiny):
    job = client.submit(data=str(tiny), model_name="simplenet", n_epochs=2, learning_rate=0.001, batch=8, seed_=0, api_name="/train")
    updates = collect(job)
    final = job.result()  # raises if the run failed
    assert final == updates[-1]
    assert final["state"] == "finished", final.get("error")
    distinct = {repr(u) for u in updates}
    assert len(distinct) >= 2
    lengths = [len(u["epochs"]) for u in updates]
    assert lengths == sorted(lengths) and lengths[-1] == 2  # epochs arrive one by one, never lost
    assert 1 in lengths  # the first epoch was streamed before the run ended
    assert [e["epoch"] for e in final["epochs"]] == [0, 1]
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "seconds"} <= set(final["epochs"][0])
    assert final["test"]["n"] == 6 and 0.0 <= final["test"]["accuracy"] <= 1.0
    ckpt = Path(final["checkpoint"])
    assert ckpt.parent == server.checkpoints and ckpt.is_file()
    # the new model answers /predict now: the same two classes, from the tiny data set
    probs = client.predict(handle_file(str(SCREENSHOT_CAT)), api_name="/predict")
    assert set(probs) == {"cat", "fish"} and math.isclose(sum(probs.values()), 1.0, abs_tol=1e-4)


def test_one_run_at_a_time_and_stop(client, server, tmp_path):
    data = make_dataset(tmp_path / "longer", counts=(30, 3, 3))
    long_job = client.submit(data=str(data), model_name="simplenet", n_epochs=1000, learning_rate=0.001, batch=1, seed_=0, api_name="/train")
    try:
        updates = collect(long_job, until=lambda outs: outs[-1]["state"] == "training")
        assert updates[-1]["state"] == "training"
        # a second run, from another client, while this one runs: refused, and the first is untouched
        other = Client(server.url, verbose=False)
        with pytest.raises(AppError, match="in progress"):
            other.predict(data=str(data), model_name="simplenet", n_epochs=2, learning_rate=0.001, batch=8, seed_=0, api_name="/train")
        with pytest.raises(AppError, match="in progress"):
            other.predict(data="", model_name="cnn", n_epochs=1, learning_rate=0.001, batch=8, seed_=0, api_name="/train")
        assert not long_job.done()
        seen = len(long_job.outputs())
        collect(long_job, until=lambda outs: len(outs) > seen + 2)  # still streaming its own updates
    finally:
        other_stop = Client(server.url, verbose=False)
        other_stop.predict(api_name="/stop")
    t0 = time.monotonic()
    updates = collect(long_job)
    stopped_after = time.monotonic() - t0
    final = updates[-1]
    assert final["state"] == "stopped", final
    assert final["checkpoint"] is None and len(final["epochs"]) < 1000
    # the stream was one coherent run: epochs only ever grew, and a single job produced them
    lengths = [len(u["epochs"]) for u in updates]
    assert lengths == sorted(lengths)
    print(f"/stop ended the run {stopped_after:.2f}s after the request returned")
    # the runner is free again
    again = client.predict(data=str(data), model_name="simplenet", n_epochs=1, learning_rate=0.001, batch=16, seed_=0, api_name="/train")
    assert again["state"] == "finished"


def test_train_bad_folder_is_refused(client, tmp_path):
    with pytest.raises(AppError, match="folder not found"):
        client.predict(data=str(tmp_path / "nowhere"), model_name="simplenet", n_epochs=2, learning_rate=0.001, batch=8, seed_=0, api_name="/train")
