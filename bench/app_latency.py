"""How quick the web app feels: run by hand, prints figures. Nothing here is a test.

    .venv/bin/python bench/app_latency.py [--n 50] [--model simplenet --epochs 15 --batch-size 1] [--parts abc] [--app app.py]

Each part launches `python app.py` in a subprocess on a free port, with a temp copy of
checkpoints/default.pt and a temp data folder (the repo's checkpoints/ and data/ are not written).

(a) Start-up: wall time from Popen(`python app.py`) to the first successful /predict answer, polling
    with gradio_client every 0.25 s (includes importing torch and gradio, loading the default model
    and building the UI).
(b) Prediction latency: 50 sequential gradio_client /predict calls with a real photo
    (assets/examples/scikit-image__chelsea.png) on the default model (EfficientNet-Lite0, CPU).
    Each call is a full client round trip: upload the file, queue, trim, decode, classify, reply.
    Median and p95; the first (warm-up) call is reported on its own.
(c) Epoch-to-page delay: how long after an epoch ends its point shows in an open browser page.
    A chromium page (Playwright, /usr/bin/chromium) is open on the Train tab. A gradio_client starts
    the run by streaming /train (the page attaches to it the way a second tab or a reload does: every
    page polls the one job with its 0.5 s gr.Timer). Reference time of epoch k: when the client's
    stream delivered the update whose epoch list first has k entries (the bench timestamps
    it by polling job.outputs() every 5 ms; the server pushes it the moment the training thread
    records the epoch, so this is a few ms after the epoch ended). Page time of epoch k: a MutationObserver inside the page stamps
    Date.now() whenever the status box or the loss plot changes; epoch k is shown when the status
    box's "Last epoch: training loss X" line carries epoch k's numbers (formatted as the app does)
    and the loss plot image has been replaced after that. Both clocks are this machine's wall clock.
    Delay = page time - reference time, median and max over the epochs. Epochs that end within one
    timer period of each other appear together, so each delay also contains the wait for the next tick.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "assets" / "examples" / "scikit-image__chelsea.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    """`python app.py` on a free port with temp checkpoints/ (a copy of default.pt) and data/."""

    def __init__(self, script: Path = ROOT / "app.py") -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="fishcat-bench-app-"))
        ck = self.tmp / "checkpoints"
        ck.mkdir()
        shutil.copy2(ROOT / "checkpoints" / "default.pt", ck / "default.pt")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = open(self.tmp / "app.log", "wb")
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, str(script), "--port", str(self.port), "--checkpoints", str(ck), "--data-dir", str(self.tmp / "data"), "--device", "cpu"],
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT)),  # fishcat for an --app copy elsewhere
        )

    def first_prediction(self, timeout: float = 300) -> tuple[float, object]:
        """Seconds from Popen to the first successful /predict, and the connected client."""
        from gradio_client import Client, handle_file

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"app.py exited:\n{(self.tmp / 'app.log').read_text()[-3000:]}")
            try:
                client = Client(self.url, verbose=False)
                client.predict(handle_file(str(PHOTO)), api_name="/predict")
                return time.perf_counter() - self.t0, client
            except Exception:
                time.sleep(0.25)
        raise SystemExit("app.py did not answer /predict in time")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def bench_predict(client, n: int) -> None:
    from gradio_client import handle_file

    t = time.perf_counter()
    client.predict(handle_file(str(PHOTO)), api_name="/predict")
    warm = time.perf_counter() - t
    times = []
    for _ in range(n):
        t = time.perf_counter()
        probs = client.predict(handle_file(str(PHOTO)), api_name="/predict")
        times.append(time.perf_counter() - t)
    ms = [x * 1000 for x in times]
    print(f"(b) /predict of {PHOTO.name} ({n} sequential calls, default model): median {statistics.median(ms):.0f} ms, "
          f"p95 {pct(ms, 0.95):.0f} ms, min {min(ms):.0f} ms, max {max(ms):.0f} ms (one more warm-up call first: {warm * 1000:.0f} ms); "
          f"answer {probs}")


PAGE_OBSERVER = """
() => {
  window.__fc = [];
  const status = () => { const s = document.querySelector('.fc-status'); return s ? s.innerText : ''; };
  const lossSrc = () => {
    const i = document.querySelector('#fc-loss-plot img');
    return i ? i.src.length + ':' + i.src.slice(-40) : '';
  };
  let last = ['', ''];
  const record = () => {
    const now = [status(), lossSrc()];
    if (now[0] !== last[0] || now[1] !== last[1]) { window.__fc.push([Date.now(), now[0], now[1]]); last = now; }
  };
  new MutationObserver(record).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ['src']});
  record();
}
"""


def bench_page_delay(app: App, model: str, epochs: int, batch_size: int) -> None:
    from gradio_client import Client
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        print(f"(c) skipped: {CHROMIUM} not found")
        return
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app.url, timeout=120_000)
        page.get_by_role("tab", name="Train").click()
        page.wait_for_selector(".fc-status", timeout=120_000)
        page.evaluate(PAGE_OBSERVER)

        client = Client(app.url, verbose=False)
        job = client.submit(data="", model_name=model, n_epochs=epochs, learning_rate=0.001, batch=batch_size, seed_=0, api_name="/train")
        # gradio_client's result_callbacks fire late (seen: all at the end), so watch job.outputs() closely instead
        arrivals: dict[int, float] = {}  # number of epochs in the stream -> wall time it first arrived
        seen = 0
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            outs = job.outputs()
            now = time.time()
            for update in outs[seen:]:
                arrivals.setdefault(len(update["epochs"]), now)
            seen = len(outs)
            if job.done():
                break
            time.sleep(0.005)
        final = job.result(timeout=60)
        time.sleep(2.0)  # let the page catch up with the last tick
        events = page.evaluate("() => window.__fc")
        browser.close()
    if final["state"] != "finished":
        print(f"(c) run ended {final['state']}: {final.get('error')}")
        return
    history = final["epochs"]

    def last_epoch_text(h: dict) -> str:  # as app.progress_html writes it
        val = f", validation loss {h['val_loss']:.3f}, validation accuracy {h['val_acc']:.1%}" if h["val_acc"] is not None else ""
        return f"Last epoch: training loss {h['train_loss']:.3f}, training accuracy {h['train_acc']:.1%}{val}"

    # times at which the loss plot's image was replaced
    plot_changes = [e[0] / 1000 for prev, e in zip(events, events[1:]) if e[2] != prev[2] and e[2]]
    delays = []
    start = 0  # epochs appear in order: look for epoch k only after where epoch k-1 was seen
    for k in range(1, len(history) + 1):
        ref = arrivals.get(k)
        wanted = last_epoch_text(history[k - 1])
        found = next((i for i in range(start, len(events)) if wanted in events[i][1]), None)
        if ref is None or found is None:
            continue  # this epoch's numbers were never on the page (a later epoch replaced them within one tick)
        start = found
        shown = events[found][0] / 1000
        # the new plot comes in the same update as the text; it may be painted a moment before or after it
        plot = next((t for t in plot_changes if t >= shown - 0.2), shown)
        delays.append(max(shown, plot) - ref)
    secs = [h["seconds"] for h in history]
    if not delays:
        print("(c) no epoch could be matched on the page")
        return
    hidden = len(history) - len(delays)
    print(f"(c) epoch end -> shown in the page ({model}, {epochs} epochs, batch {batch_size} on the built-in data; "
          f"epochs took median {statistics.median(secs):.2f}s): median {statistics.median(delays) * 1000:.0f} ms, "
          f"max {max(delays) * 1000:.0f} ms, min {min(delays) * 1000:.0f} ms over {len(delays)} epochs"
          + (f" ({hidden} epoch(s) were overtaken by the next one within a tick and never shown on their own)" if hidden else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50, help="sequential /predict calls for (b)")
    parser.add_argument("--model", default="simplenet")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=1, help="small batches make an epoch last long enough to tell epochs apart")
    parser.add_argument("--parts", default="abc", help="which parts to run, e.g. 'c' (a always runs: it starts the app)")
    parser.add_argument("--app", type=Path, default=ROOT / "app.py", help="the app script (e.g. an older copy, for an A/B comparison)")
    args = parser.parse_args()
    app = App(args.app)
    try:
        startup, client = app.first_prediction()
        print(f"(a) python {args.app.name} -> first successful /predict: {startup:.1f} s")
        if "b" in args.parts:
            bench_predict(client, args.n)
        if "c" in args.parts:
            bench_page_delay(app, args.model, args.epochs, args.batch_size)
    finally:
        app.close()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
