"""The app in a real browser: Debian's chromium driven by Playwright against `python app.py` in a
subprocess (temp checkpoints/ and data/). Drops pictures on the Predict tab, trains on the Train tab
and watches the page follow the run. Screenshots go to test-artifacts/ (git-ignored).

Skipped when /usr/bin/chromium (or the playwright package) is missing, unless FISHCAT_REQUIRE_BROWSER=1,
as in CI, where that is a failure.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from _app_support import ROOT, SCREENSHOT_CAT, shared_app

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
ARTIFACTS = ROOT / "test-artifacts"
WAIT_MS = 180_000  # generous: the machine may be busy; nothing here asserts on timing
SOON_MS = 30_000  # for what follows from something already seen (the same page update)
STATUS = "#fc-status .fc-status"  # the status text itself, without the block's loading indicator


def _missing_browser() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    return None


@pytest.fixture(scope="module")
def browser():
    why = _missing_browser()
    if why:
        if os.environ.get("FISHCAT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"FISHCAT_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(browser, request, tmp_path_factory):
    return shared_app(request, tmp_path_factory)


@pytest.fixture
def page(browser, server, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(WAIT_MS)
    pg.goto(server.url)
    pg.locator("input[type=file]").first.wait_for(state="attached")
    failed_before = request.session.testsfailed
    yield pg
    if request.session.testsfailed > failed_before:  # the call phase failed: keep what the page looked like
        shot(pg, f"FAILED-{request.node.name}.png")
        (ARTIFACTS / f"FAILED-{request.node.name}.log").write_text(server.log_text())
    context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def toasts(page) -> str:
    return " | ".join(page.locator(".toast-body").all_inner_texts())


def wait_text(page, selector: str, pattern: str) -> str:
    """Wait until the element's text matches the regex; return the text."""
    page.wait_for_function(
        "([sel, pat]) => { const e = document.querySelector(sel); return !!e && new RegExp(pat).test(e.innerText); }",
        arg=[selector, pattern],
        timeout=WAIT_MS,
    )
    return page.locator(selector).inner_text()


def watch_loss_plot(page) -> None:
    """Record every image the loss plot shows (an in-page MutationObserver), for plot_images()."""
    page.evaluate(
        """() => {
        window.__lossImages = [];
        const plot = document.querySelector('#fc-loss-plot');
        const record = () => {
          const img = plot.querySelector('img, svg:not([aria-hidden])');
          const src = img ? (img.src || img.outerHTML) : '';
          const all = window.__lossImages;
          if (src && all[all.length - 1] !== src) all.push(src);
        };
        new MutationObserver(record).observe(plot, {subtree: true, childList: true, attributes: true});
        record();
      }"""
    )


def plot_images(page) -> list[str]:
    return page.evaluate("() => window.__lossImages")


def open_train_tab(page) -> None:
    page.get_by_role("tab", name="Train").click()
    page.locator("#fc-status").wait_for(state="visible")


def choose_settings(page, epochs: int, batch_size: int | None = None) -> None:
    page.get_by_label("simplenet").check()
    for label, value in (("Epochs", epochs), ("Batch size", batch_size)):
        if value is not None:
            box = page.get_by_label(label, exact=True)
            box.fill(str(value))
            box.press("Tab")


def use_checkpoint(page, name: str) -> None:
    """Make `name` the active model the way a person does: Train tab, Models accordion, Use."""
    open_train_tab(page)
    page.get_by_text("Models (checkpoints)").click()
    page.get_by_label("Saved checkpoints (● = active)").click()
    page.get_by_role("option", name=re.compile(rf"^(\W*● )?{re.escape(name)} \|")).click()
    page.wait_for_function(
        "([label, name]) => (document.querySelector(`input[aria-label='${label}']`).value || '').includes(name)",
        arg=["Saved checkpoints (● = active)", name],
        timeout=SOON_MS,
    )
    page.get_by_role("button", name="Use this model for Predict").click()
    page.get_by_role("tab", name="Predict").click()
    page.get_by_text(f"Answered by {name}").wait_for(timeout=SOON_MS)


def test_predict_tab(page, tmp_path):
    use_checkpoint(page, "default.pt")  # the app is shared with other tests, which train
    page.locator("input[type=file]").first.set_input_files(str(SCREENSHOT_CAT))
    verdict = page.locator("h2", has_text="%")
    verdict.first.wait_for()
    assert re.match(r"(Not sure: maybe )?cat \(\d+%\)", verdict.first.inner_text()), verdict.first.inner_text()
    assert page.locator("[data-testid=label-output-value]").first.inner_text().strip() == "cat"
    assert "Answered by" in page.inner_text("body") and "default.pt" in page.inner_text("body")
    shot(page, "browser-predict.png")

    # a text file with an image name: the error names it, and the last answer is not left standing
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture\n" * 20)
    page.locator("input[type=file]").first.set_input_files(str(notes))
    page.wait_for_function("() => [...document.querySelectorAll('.toast-body')].some(t => t.innerText.includes('notes.png'))", timeout=WAIT_MS)
    assert "not an image" in toasts(page)
    assert page.locator("h2", has_text="cat (").count() == 0, "the previous picture's answer is still shown"
    shot(page, "browser-predict-error.png")

    # an animated GIF: classified by its first frame, and the page says so
    from PIL import Image

    frames = [Image.new("RGB", (160, 120), c) for c in ((200, 40, 40), (40, 60, 200))]
    gif = tmp_path / "blink.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=300, loop=0)
    page.locator("input[type=file]").first.set_input_files(str(gif))
    page.get_by_text("only its first frame was classified").wait_for(timeout=SOON_MS * 2)


def test_train_tab_runs_to_the_end(page, server):
    open_train_tab(page)
    page.wait_for_timeout(1500)  # a tick of the page's timer: it shows the app's last run, if any (other tests share the app)
    shown_before = page.locator(STATUS).inner_text()
    assert not shown_before.startswith(("Preparing", "Training"))
    before = set(server.checkpoints.glob("*-simplenet*.pt"))
    watch_loss_plot(page)
    choose_settings(page, epochs=3)
    page.get_by_role("button", name="Train", exact=True).click()
    page.wait_for_function("([sel, old]) => document.querySelector(sel).innerText !== old", arg=[STATUS, shown_before], timeout=WAIT_MS)
    status = wait_text(page, STATUS, r"^(Finished|Failed|Stopped) \(simplenet on .*assets/default")
    assert status.startswith("Finished"), status
    assert "simplenet on" in status and "Last epoch: training loss" in status
    page.wait_for_function("() => document.querySelector('#fc-loss-plot img') !== null", timeout=SOON_MS)
    assert plot_images(page), "the loss plot never showed an image"
    page.get_by_text("it is now the active model for Predict").wait_for(timeout=SOON_MS)
    page.get_by_text(re.compile(r"^Test accuracy \d+(\.\d)?%$")).wait_for(timeout=SOON_MS)
    page.locator("#fc-accuracy-plot img").wait_for(timeout=SOON_MS)
    saved = [p.name for p in set(server.checkpoints.glob("*-simplenet*.pt")) - before]
    assert len(saved) == 1 and page.get_by_text(saved[0]).count() >= 1
    shot(page, "browser-train-finished.png")
    # the Predict tab now names the new model
    page.get_by_role("tab", name="Predict").click()
    page.get_by_text(f"Answered by {saved[0]}").wait_for(timeout=SOON_MS)


def test_long_run_survives_reload_refuses_a_second_start_and_stops(page):
    open_train_tab(page)
    choose_settings(page, epochs=1000, batch_size=4)
    page.get_by_role("button", name="Train", exact=True).click()
    wait_text(page, STATUS, r"^Training: epoch")

    # reload in the middle: the page re-attaches to the run
    page.reload()
    open_train_tab(page)
    watch_loss_plot(page)
    wait_text(page, STATUS, r"^Training: epoch \d+/1000")
    # ...and shows the settings of that run, not the defaults
    page.wait_for_function("() => [...document.querySelectorAll('input[type=number]')].some(i => i.value === '1000')", timeout=SOON_MS)
    assert page.get_by_label("simplenet").is_checked()
    assert page.get_by_label("Epochs", exact=True).input_value() == "1000"
    assert page.get_by_label("Batch size", exact=True).input_value() == "4"
    # the plot follows the run: at least two different pictures as epochs end
    page.wait_for_function("() => window.__lossImages.length >= 2", timeout=WAIT_MS)
    epoch = int(re.search(r"epoch (\d+)/1000", page.locator(STATUS).inner_text()).group(1))
    assert epoch >= 2
    shot(page, "browser-train-running.png")

    # Train again while it runs: refused with a clear message, the run goes on
    page.get_by_role("button", name="Train", exact=True).click()
    page.wait_for_function("() => [...document.querySelectorAll('.toast-body')].some(t => t.innerText.includes('in progress'))", timeout=WAIT_MS)
    assert "already in progress" in toasts(page)

    page.get_by_role("button", name="Stop").click()
    status = wait_text(page, STATUS, r"^(Stopped|Finished|Failed)")
    assert status.startswith("Stopped"), status
    page.get_by_text(re.compile(r"Stopped after \d+ of 1000 epochs")).wait_for(timeout=SOON_MS)
    shot(page, "browser-train-stopped.png")
