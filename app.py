"""fishcat's web app: `python app.py`, then open http://127.0.0.1:7860.

Predict tab: drop screenshots and photos onto the active model. Train tab: pick data, train in the
one background thread (fishcat.jobs) while loss and accuracy plots stream in. Gradio lives only here.
"""

from __future__ import annotations

import argparse
import functools
import html
import math
import shutil
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import gradio as gr
from PIL import Image, ImageDraw
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse

from fishcat import paths
from fishcat.archive import ArchiveError, extract_zip, find_dataset_root
from fishcat.checkpoint import CheckpointError, clean_temp_files, list_checkpoints
from fishcat.data import Dataset, DatasetError, find_corrupt, quarantine, scan_dataset
from fishcat.images import ImageError, load_image
from fishcat.jobs import JobBusy, JobRunner, JobSnapshot
from fishcat.models import DEFAULT_MODEL, MODELS, build_model, count_parameters, describe_layers
from fishcat.plots import accuracy_figure, confusion_figure, loss_figure
from fishcat.predict import UNSURE_BELOW, ActiveModel, Prediction
from fishcat.train import TrainConfig

BUILTIN = "Built-in cat/fish pictures"
FOLDER = "A folder on this computer"
ZIP = "Upload a .zip"
MAX_UPLOAD = "200mb"
ACTIVE_POINTER = ".active"  # checkpoints/.active names the checkpoint to start with


class AnyImage(gr.Image):
    """gr.Image that hands the raw uploaded file to fishcat's load_image.

    Gradio's own preprocessing opens the file with Pillow first, so a corrupt file, a pixel bomb or a
    text file would fail with a generic error; fishcat's loader gives a clear message instead.
    """

    is_template = True  # render with gr.Image's frontend

    def preprocess(self, payload):  # type: ignore[override]
        if payload is None or (payload.url and payload.url.startswith("data:")):
            return super().preprocess(payload)
        return payload.path


class FishcatApp:
    """The app's long-lived state: the active model, the training runner, and its folders."""

    def __init__(self, checkpoint_dir: Path = paths.CHECKPOINT_DIR, data_dir: Path = paths.DATA_DIR, device: str = "auto") -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        self.data_dir = Path(data_dir)
        self.device = device
        self.active = ActiveModel(device)
        self.startup_errors: list[str] = []
        self.runner = JobRunner(self.checkpoint_dir, self.data_dir / "cache", on_checkpoint=self.activate)

    # --- checkpoints -----------------------------------------------------------------------------
    def load_initial_model(self) -> None:
        """Active at start: the one named in checkpoints/.active, else the shipped default, else the newest."""
        try:
            clean_temp_files(self.checkpoint_dir)
        except OSError:
            pass
        candidates: list[Path] = []
        pointer = self.checkpoint_dir / ACTIVE_POINTER
        try:
            named = self.checkpoint_dir / pointer.read_text().strip()
            if named.is_file() and named.parent == self.checkpoint_dir:
                candidates.append(named)
        except OSError:
            pass
        candidates.append(self.checkpoint_dir / paths.DEFAULT_CHECKPOINT.name)
        candidates += [c.path for c in list_checkpoints(self.checkpoint_dir)]
        seen: list[Path] = []
        for c in candidates:
            if c.is_file() and c not in seen:
                seen.append(c)
        _, errors = self.active.activate_first_usable(seen)
        self.startup_errors = errors

    def activate(self, path: Path) -> None:
        self.active.activate(path)
        try:  # remembering the choice is a convenience; a read-only folder must not break it
            tmp = self.checkpoint_dir / f".{ACTIVE_POINTER}.tmp"
            tmp.write_text(Path(path).name)
            tmp.replace(self.checkpoint_dir / ACTIVE_POINTER)
        except OSError:
            pass

    # --- data --------------------------------------------------------------------------------------
    def import_zip(self, upload: str) -> Path:
        """Copy an uploaded zip out of Gradio's temp cache into data/, extract it safely there."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = _safe_name(Path(upload).stem) or "dataset"
        uploads = self.data_dir / "uploads"
        uploads.mkdir(parents=True, exist_ok=True)
        kept = uploads / f"{stamp}-{name}.zip"
        try:
            shutil.copyfile(upload, kept)
            dest = self.data_dir / "datasets" / f"{stamp}-{name}"
            n = 1
            while dest.exists():
                dest = self.data_dir / "datasets" / f"{stamp}-{name}-{n}"
                n += 1
            extract_zip(kept, dest)
        except BaseException:
            # A refused archive or a disk that filled up mid-copy leaves no copy behind in uploads/.
            kept.unlink(missing_ok=True)
            raise
        return find_dataset_root(dest)


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:60].strip("_")


# ---------------------------------------------------------------------------------------------------
# Predict tab
# ---------------------------------------------------------------------------------------------------


def model_card(app: FishcatApp) -> str:
    predictor = app.active.predictor
    if predictor is None:
        problems = "".join(f"\n- {html.escape(e)}" for e in app.startup_errors)
        return (
            "**No model is loaded yet.** Go to the **Train** tab and press **Train** on the built-in pictures "
            "(about half a minute), or put a fishcat checkpoint into `checkpoints/`." + (f"\n\nProblems found:{problems}" if problems else "")
        )
    meta = predictor.checkpoint.meta
    test = (meta.get("metrics") or {}).get("test") or {}
    acc = test.get("accuracy")
    acc_text = f"{acc:.1%} on {test.get('n')} test images" if isinstance(acc, float) and not math.isnan(acc) else "not measured"
    data = meta.get("data") or {}
    path = predictor.checkpoint.path
    return (
        f"**Answered by** `{path.name if path else '?'}`: model **{meta['model']}**, classes "
        f"{', '.join(f'**{c}**' for c in meta['classes'])}; test accuracy {acc_text}; "
        f"trained on `{data.get('root', '?')}` {str(meta.get('created', ''))[:16].replace('T', ' ')} UTC; "
        f"probabilities calibrated on its validation images (temperature {predictor.checkpoint.temperature:.2f})."
    )


def draw_box(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """The input with the trimmed region outlined, scaled for display."""
    shown = image.copy()
    shown.thumbnail((640, 640))
    sx, sy = shown.width / image.width, shown.height / image.height
    draw = ImageDraw.Draw(shown)
    b = (box[0] * sx, box[1] * sy, box[2] * sx - 1, box[3] * sy - 1)
    draw.rectangle(b, outline=(255, 0, 80), width=max(2, shown.width // 160))
    return shown


def verdict(p: Prediction) -> str:
    if p.sure:
        return f"## {html.escape(p.label)} ({p.confidence:.0%})"
    ranked = sorted(p.probabilities.items(), key=lambda kv: -kv[1])
    second = ranked[1][0] if len(ranked) > 1 else ""
    return (
        f"## Not sure: maybe {html.escape(p.label)} ({p.confidence:.0%})\n"
        f"The best guess is under {UNSURE_BELOW:.0%}. It may be neither {html.escape(p.label)} nor {html.escape(second)}, "
        "or the picture is small, cropped or unusual."
    )


def predict_one(app: FishcatApp, path: str | None, trim: bool):
    if not path:
        return None, "", None, None, model_card(app)
    predictor = app.active.predictor  # one model for the whole request, even if another is activated now
    if predictor is None:
        raise gr.Error("No model is loaded. Train one in the Train tab first.")
    try:
        p = predictor.predict(path, trim=trim)
    except ImageError as e:
        raise gr.Error(str(e)) from None
    trim_view = draw_box(p.image, p.box) if trim else None
    note = model_card(app)
    if trim and not p.trimmed:
        note += "\n\nTrim found no borders or window chrome to remove; the whole picture was used."
    if _is_animated(path):
        note += "\n\nThis is an animated image: only its first frame was classified."
    return p.probabilities, verdict(p), p.seen.resize((224, 224), Image.NEAREST), trim_view, note


def _is_animated(path: str) -> bool:
    try:  # headers only; not MPO/TIFF, whose extra frames are depth maps or pages, not an animation
        with Image.open(path, formats=("GIF", "PNG", "WEBP")) as im:
            return bool(getattr(im, "is_animated", False))
    except Exception:
        return False


def predict_api(app: FishcatApp, path: str | None) -> dict[str, float]:
    """The `predict` API endpoint: image in, {class: probability} out (screenshot trim on)."""
    if not path:
        raise gr.Error("No image given.")
    predictor = app.active.predictor
    if predictor is None:
        raise gr.Error("No model is loaded.")
    try:
        return predictor.predict(path, trim=True).probabilities
    except ImageError as e:
        raise gr.Error(str(e)) from None


def predict_many(app: FishcatApp, files: list[str] | None, trim: bool):
    if not files:
        return []
    predictor = app.active.predictor
    if predictor is None:
        raise gr.Error("No model is loaded. Train one in the Train tab first.")
    items = []
    for f in files:
        name = Path(f).name
        try:
            p = predictor.predict(f, trim=trim)
            thumb = p.image.copy()
            thumb.thumbnail((320, 320))
            sure = "" if p.sure else " (not sure)"
            items.append((thumb, f"{p.label} {p.confidence:.0%}{sure}: {name}"))
        except ImageError as e:
            items.append((Image.new("RGB", (64, 64), (220, 220, 220)), f"error: {e}"))
    return items


# ---------------------------------------------------------------------------------------------------
# Train tab
# ---------------------------------------------------------------------------------------------------


def resolve_data(app: FishcatApp, source: str, folder: str, upload: str | None, current: str | None) -> Path:
    if source == BUILTIN:
        return paths.DEFAULT_DATA
    if source == FOLDER:
        if not folder or not folder.strip():
            raise gr.Error("Type the path of a folder with train/ val/ test/ (or one sub-folder per class).")
        return Path(folder.strip()).expanduser()
    if current:
        # Already extracted from this upload by Check data or an earlier Train (a new upload clears it):
        # no second copy, and Gradio deleting its temp file later does not matter.
        return Path(current)
    if upload:
        try:
            return app.import_zip(upload)
        except ArchiveError as e:
            raise gr.Error(str(e)) from None
        except OSError as e:
            raise gr.Error(f"Could not store the upload: {e.strerror or e}") from None
    raise gr.Error("Upload a .zip of your data set first (train/ val/ test/ folders, or one folder per class).")


def scan_or_fail(root: Path, seed: int) -> Dataset:
    try:
        return scan_dataset(root, seed=int(seed))
    except DatasetError as e:
        raise gr.Error(str(e)) from None


def summary_markdown(ds: Dataset, corrupt: list[tuple[Path, str]]) -> str:
    counts = ds.counts()
    header = "| split | " + " | ".join(html.escape(c) for c in ds.classes) + " | total |"
    rows = [header, "|---|" + "---|" * (len(ds.classes) + 1)]
    for split, per in counts.items():
        rows.append(f"| {split} | " + " | ".join(str(per[c]) for c in ds.classes) + f" | {sum(per.values())} |")
    lines = [f"**Data:** `{ds.root}`: {len(ds.classes)} classes: " + ", ".join(f"**{html.escape(c)}**" for c in ds.classes), "", *rows, ""]
    for note in ds.notes:
        lines.append(f"- note: {html.escape(note)}")
    for w in ds.warnings():
        lines.append(f"- **warning:** {html.escape(w)}")
    if corrupt:
        lines.append(f"- **warning:** {len(corrupt)} file(s) are not readable images and will be skipped:")
        lines += [f"  - {html.escape(why)}" for _, why in corrupt[:20]]
        if len(corrupt) > 20:
            lines.append(f"  - ... and {len(corrupt) - 20} more")
    else:
        lines.append("- every image decodes")
    return "\n".join(lines)


def thumbnails(ds: Dataset, per_class: int = 4) -> list[tuple[Image.Image, str]]:
    out = []
    for label, cls in enumerate(ds.classes):
        picked = [s for s in ds.splits["train"] if s.label == label][:per_class]
        out += [(img, cls) for img in map(_thumbnail, (s.path for s in picked), [160] * len(picked)) if img is not None]
    return out


def _thumbnail(path: Path, size: int) -> Image.Image | None:
    """A small preview for a gallery; None for a file that does not decode (it is reported elsewhere)."""
    try:
        img = load_image(path, min_size=(128, 128))
    except ImageError:
        return None
    img.thumbnail((size, size))
    return img


def check_data(app: FishcatApp, source: str, folder: str, upload: str | None, current: str | None, seed: int):
    root = resolve_data(app, source, folder, upload, current)
    ds = scan_or_fail(root, seed)
    corrupt = find_corrupt([s.path for s in ds.all_samples()])
    quarantine_btn = gr.update(visible=bool(corrupt) and source != BUILTIN)
    return summary_markdown(ds, corrupt), thumbnails(ds), str(root), [str(p) for p, _ in corrupt], quarantine_btn


def quarantine_files(current: str | None, corrupt: list[str] | None):
    if not current or not corrupt:
        raise gr.Error("Nothing to move: check the data first.")
    try:
        moved = quarantine(current, [Path(p) for p in corrupt])
    except (DatasetError, OSError) as e:
        raise gr.Error(str(e)) from None
    gr.Info(f"Moved {len(moved)} file(s) to {Path(current) / '.quarantine'}; nothing was deleted.")
    return [], gr.update(visible=False)


def make_config(model: str, epochs, lr, batch_size, seed, device: str = "auto") -> TrainConfig:
    try:
        return TrainConfig(model=model, epochs=int(epochs), lr=float(lr), batch_size=int(batch_size), seed=int(seed), device=device)
    except (TypeError, ValueError) as e:
        raise gr.Error(f"Training settings: {e}") from None


def start_training(app: FishcatApp, source, folder, upload, current, model, epochs, lr, batch_size, seed) -> tuple[JobSnapshot, str]:
    if app.runner.is_running():
        raise gr.Error("A training run is already in progress (started from this or another page). Wait for it, or press Stop.")
    config = make_config(model, epochs, lr, batch_size, seed, app.device)
    root = resolve_data(app, source, folder, upload, current)
    ds = scan_or_fail(root, config.seed)
    try:
        snap = app.runner.start(config, ds)
    except JobBusy as e:
        raise gr.Error(f"{e}.") from None
    return snap, str(root)


def progress_html(snap: JobSnapshot | None) -> str:
    if snap is None:
        return "<div class='fc-status'>No training run yet. Choose data and a model, then press <b>Train</b>.</div>"
    cfg = snap.config
    p = snap.progress
    done_epochs = len(snap.history)
    if snap.state == "preparing":
        what = {"decode": "decoding images (once per run)", "features": "computing backbone features (once per image, cached)"}.get(
            p.stage if p else "", "reading the data set"
        )
        frac = (p.done / max(1, p.total)) if p else 0.0
        label = f"Preparing: {what}" + (f" {p.done}/{p.total}" if p else "")
    elif snap.state == "training":
        batch = f", batch {p.done}/{p.total}" if p and p.stage == "train" else ""
        current = min(cfg.epochs, done_epochs + (1 if p and p.stage == "train" and p.epoch == done_epochs else 0))
        frac = (done_epochs + ((p.done / max(1, p.total)) if p and p.stage == "train" and p.epoch == done_epochs else 0)) / cfg.epochs
        label = f"Training: epoch {current}/{cfg.epochs}{batch}" if p and p.stage == "train" else "Evaluating on the test split"
    else:
        frac = 1.0 if snap.state == "finished" else done_epochs / cfg.epochs
        label = {"finished": "Finished", "stopped": "Stopped", "failed": "Failed"}[snap.state]
    eta = snap.eta_seconds()
    timing = f"elapsed {snap.elapsed:.0f}s" + (f", about {eta:.0f}s left" if eta is not None else "")
    last = snap.history[-1] if snap.history else None
    latest = ""
    if last:
        val = f", validation loss {last.val_loss:.3f}, validation accuracy {last.val_acc:.1%}" if last.val_acc is not None else ""
        latest = f"<br>Last epoch: training loss {last.train_loss:.3f}, training accuracy {last.train_acc:.1%}{val}"
    error = f"<div class='fc-error'><b>The run failed:</b> {html.escape(snap.error)}<br>The active model was not changed.</div>" if snap.error else ""
    color = {"failed": "#d33", "stopped": "#e90", "finished": "#2a2"}.get(snap.state, "#3b82f6")
    return (
        f"<div class='fc-status'><b>{html.escape(label)}</b> ({html.escape(cfg.model)} on <code>{html.escape(snap.data_root)}</code>; {timing})"
        f"<div style='background:#ddd;border-radius:4px;height:12px;margin:6px 0'>"
        f"<div style='width:{max(0.0, min(1.0, frac)) * 100:.1f}%;background:{color};height:12px;border-radius:4px'></div></div>"
        f"{latest}{error}</div>"
    )


def results_markdown(snap: JobSnapshot) -> str:
    r = snap.result
    if snap.state == "stopped":
        return f"Stopped after {len(snap.history)} of {snap.config.epochs} epochs. No checkpoint was saved; the active model is unchanged."
    if snap.state != "finished" or r is None:
        return ""
    lines = [f"### Result: saved `{snap.checkpoint.name if snap.checkpoint else '?'}`; it is now the active model for Predict"]
    if r.test is not None:
        lines.append(f"**Test accuracy {r.test.accuracy:.1%}** on {r.test.n} images never used for training or validation.")
        lines.append("")
        lines.append("| class | test accuracy |")
        lines.append("|---|---|")
        lines += [f"| {html.escape(c)} | {a:.1%} |" for c, a in r.test.per_class.items()]
    else:
        lines.append("No test images, so no test accuracy.")
    if r.skipped:
        lines.append(f"\nSkipped {len(r.skipped)} unreadable image(s).")
    lines.append(f"\nTook {r.seconds:.1f}s.")
    return "\n".join(lines)


def wrong_gallery(snap: JobSnapshot) -> list[tuple[Image.Image, str]]:
    if snap.result is None:
        return []
    out = []
    for path, true, pred, conf in snap.result.wrong_test_images()[:40]:
        img = _thumbnail(path, 200)
        if img is not None:
            out.append((img, f"{true} → {pred} {conf:.0%}"))  # short: a gallery cell is ~100 px wide
    return out


def checkpoint_choices(app: FishcatApp) -> tuple[list[tuple[str, str]], str | None]:
    infos = list_checkpoints(app.checkpoint_dir)
    active = app.active.predictor
    active_path = str(active.checkpoint.path) if active and active.checkpoint.path else None
    choices = [(("● " if str(i.path) == active_path else "") + i.label(), str(i.path)) for i in infos]
    return choices, active_path


def model_list(chosen: str) -> str:
    """One line per model of the registry, the chosen one in bold."""
    return "\n".join(
        f"- **{name}: {info.description}**" if name == chosen else f"- {name}: {info.description}" for name, info in MODELS.items()
    )


@functools.lru_cache(maxsize=None)
def model_table(model: str) -> str:
    """Layers and parameter counts of a freshly built model (for 2 classes), as markdown."""
    info = MODELS[model]
    net = build_model(model, 2)
    trainable, total = count_parameters(net)
    lines = [f"### {model}", info.description, "", f"**Parameters:** {total:,} in all, **{trainable:,} trained** (for 2 classes)", ""]
    if info.frozen_backbone:
        lines.append(
            "The backbone is frozen: each image goes through it **once per run** (features are cached on disk by file content), "
            "and every epoch trains only the head on those features."
        )
    lines += ["", "| layer | module | parameters | trains |", "|---|---|---|---|"]
    for name, layer, n, trains in describe_layers(net):
        lines.append(f"| `{name}` | `{html.escape(layer[:80])}` | {n:,} | {'yes' if trains else 'no'} |")
    lines += ["", "**Preprocessing** (the same function for training, evaluation and prediction):", ""]
    lines += [f"{i}. {html.escape(step)}" for i, step in enumerate(info.input_spec.describe(), 1)]
    return "\n".join(lines)


def under_the_hood(model: str, epochs, lr, batch_size, seed) -> str:
    if model not in MODELS:
        return ""
    try:
        cfg = asdict(make_config(model, epochs, lr, batch_size, seed))
    except gr.Error as e:
        cfg = {"error": str(e)}
    return model_table(model) + "\n\n" + "\n".join(
        [
            "**Training settings:** " + ", ".join(f"{k}={v}" for k, v in cfg.items()),
            "",
            "Optimizer Adam, loss cross-entropy, training data shuffled every epoch; validation on `val/` after every epoch; "
            "test accuracy on `test/` once at the end.",
        ]
    )


# ---------------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------------

CSS = """
.fc-status { font-size: 15px; }
.fc-error { color: #b00; margin-top: 6px; white-space: pre-wrap; }
"""


def build_ui(app: FishcatApp) -> gr.Blocks:
    example_files = sorted(str(p) for p in paths.EXAMPLES_DIR.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".gif"))
    with gr.Blocks(title="fishcat", analytics_enabled=False, delete_cache=(3600, 24 * 3600)) as demo:
        gr.Markdown("# fishcat\nTrain an image classifier on your own pictures, then drop screenshots and photos on it.")
        with gr.Tab("Predict", id="predict"):
            with gr.Row():
                with gr.Column():
                    image = AnyImage(
                        label="Drop a screenshot or photo here, click to choose, or paste",
                        type="filepath",
                        sources=["upload", "clipboard", "webcam"],
                        height=360,
                    )
                    trim = gr.Checkbox(value=True, label="Trim screenshot borders, bars and window chrome first")
                    if example_files:
                        gr.Examples(example_files, inputs=image, label="Examples (click one)")
                with gr.Column():
                    verdict_md = gr.Markdown()
                    label = gr.Label(label="Probability per class", num_top_classes=5)
                    with gr.Row():
                        seen = gr.Image(label="What the network saw", type="pil", interactive=False, height=240)
                        trimmed = gr.Image(label="Region classified (red box)", type="pil", interactive=False, height=240)
                    card = gr.Markdown(model_card(app))
            with gr.Accordion("Several images at once", open=False):
                many = gr.File(label="Drop several images", file_count="multiple", file_types=["image"])
                gallery = gr.Gallery(label="Predictions", columns=5, height="auto")
            # The named API endpoint: image in, {class: probability} out. AnyImage, so a script gets
            # fishcat's own message for a non-image (gr.Image would fail in Pillow with a generic one).
            api_in = AnyImage(type="filepath", visible=False)
            api_out = gr.JSON(visible=False)
            api_btn = gr.Button(visible=False)

        with gr.Tab("Train", id="train"):
            with gr.Row():
                with gr.Column(scale=1):
                    source = gr.Radio([BUILTIN, FOLDER, ZIP], value=BUILTIN, label="Data")
                    folder = gr.Textbox(label="Folder path", placeholder="/home/me/pictures/catfish (train/ val/ test/ or one folder per class)", visible=False)
                    upload = gr.File(label="Data set .zip", file_types=[".zip"], type="filepath", visible=False)
                    check_btn = gr.Button("Check data")
                    model = gr.Radio([(f"{name}", name) for name in MODELS], value=DEFAULT_MODEL, label="Model")
                    model_desc = gr.Markdown(model_list(DEFAULT_MODEL))
                    with gr.Row():
                        epochs = gr.Number(value=20, label="Epochs", precision=0, minimum=1, maximum=1000)
                        lr = gr.Number(value=0.001, label="Learning rate", minimum=0)
                    with gr.Row():
                        batch_size = gr.Number(value=64, label="Batch size", precision=0, minimum=1, maximum=4096)
                        seed = gr.Number(value=0, label="Seed", precision=0)
                    with gr.Row():
                        train_btn = gr.Button("Train", variant="primary")
                        stop_btn = gr.Button("Stop", variant="stop")
                with gr.Column(scale=2):
                    status = gr.HTML(progress_html(None), elem_id="fc-status")
                    with gr.Row():
                        # the figures carry their own titles; a block label would cover the top of the y axis
                        loss_plot = gr.Plot(label="Loss", show_label=False, elem_id="fc-loss-plot")
                        acc_plot = gr.Plot(label="Accuracy", show_label=False, elem_id="fc-accuracy-plot")
                    results = gr.Markdown()
                    with gr.Row():
                        confusion_plot = gr.Plot(label="Confusion matrix", visible=False)
                        wrong = gr.Gallery(label="Test images it got wrong (true → predicted)", columns=3, height=320, visible=False)
            with gr.Accordion("Data summary", open=True):
                summary = gr.Markdown("Press **Check data** to see classes, counts and a few pictures before training.")
                thumbs = gr.Gallery(label="A few training pictures per class", columns=8, height=200, visible=False)  # empty until checked
                quarantine_btn = gr.Button("Move unreadable files to a .quarantine folder", visible=False)
            with gr.Accordion("Models (checkpoints)", open=False):
                ckpt = gr.Dropdown(label="Saved checkpoints (● = active)", choices=[], interactive=True)
                with gr.Row():
                    use_btn = gr.Button("Use this model for Predict")
                    refresh_btn = gr.Button("Refresh list")
            with gr.Accordion("Under the hood", open=False):
                hood = gr.Markdown()
            data_root = gr.State(None)
            corrupt_state = gr.State([])
            seen_version = gr.State(-1)
            seen_plots = gr.State(None)  # (job id, epochs) of the plots this page shows
            timer = gr.Timer(0.5)

        # --- predict events ---
        predict_outputs = [label, verdict_md, seen, trimmed, card]
        # A new picture first clears the last one's answer (unqueued, so at once), so a file that fails
        # shows its error next to nothing stale; progress and errors show on the probability panel only.
        # (A js-only clearing step made the change event fire twice: two predictions, two error toasts.)
        image.change(lambda: (None, "", None, None), None, [label, verdict_md, seen, trimmed], queue=False, show_progress="hidden", api_visibility="private").then(
            lambda p, t: predict_one(app, p, t), [image, trim], predict_outputs, api_name="classify", show_progress="minimal", show_progress_on=label
        )
        trim.change(lambda p, t: predict_one(app, p, t), [image, trim], predict_outputs, api_visibility="private", show_progress_on=label)
        many.change(lambda fs, t: predict_many(app, fs, t), [many, trim], gallery, api_visibility="private")
        api_btn.click(lambda p: predict_api(app, p), api_in, api_out, api_name="predict", concurrency_limit=8)

        # --- train events ---
        source.change(
            lambda s: (gr.update(visible=s == FOLDER), gr.update(visible=s == ZIP), None),
            source,
            [folder, upload, data_root],
            api_visibility="private",
        )
        upload.change(lambda: None, None, data_root, api_visibility="private")
        def on_check(s, f, u, c, sd):
            summary_, thumbs_, *rest = check_data(app, s, f, u, c, sd)
            return (summary_, gr.update(value=thumbs_, visible=True), *rest)

        check_btn.click(
            on_check,
            [source, folder, upload, data_root, seed],
            [summary, thumbs, data_root, corrupt_state, quarantine_btn],
            api_visibility="private",
        )
        quarantine_btn.click(quarantine_files, [data_root, corrupt_state], [corrupt_state, quarantine_btn], api_visibility="private")
        hood_inputs = [model, epochs, lr, batch_size, seed]
        model.change(model_list, model, model_desc, api_visibility="private")
        for comp in hood_inputs:
            comp.change(under_the_hood, hood_inputs, hood, api_visibility="private")

        def on_train(s, f, u, c, m, e, l, b, sd):
            _, root = start_training(app, s, f, u, c, m, e, l, b, sd)
            return root

        train_btn.click(on_train, [source, folder, upload, data_root, model, epochs, lr, batch_size, seed], data_root, api_visibility="private")

        def on_stop():
            if app.runner.stop():
                gr.Info("Stopping at the end of the current batch.")
            else:
                gr.Info("No training run is in progress.")

        stop_btn.click(on_stop, None, None, api_name="stop", concurrency_limit=None)

        # Every open page polls the one job: a second tab or a reload re-attaches to a running run.
        refresh_outputs = [status, loss_plot, acc_plot, results, confusion_plot, wrong, ckpt, card, seen_version, seen_plots]
        # Rendering a matplotlib figure costs 0.1-0.5 s of CPU, and the job's version moves on every batch:
        # render the two plots once per new epoch, for all open pages together, and skip them otherwise.
        plot_lock = threading.Lock()
        plot_cache: dict = {}

        def epoch_plots(snap: JobSnapshot):
            key = (snap.job_id, len(snap.history))
            with plot_lock:
                if plot_cache.get("key") != key:
                    figs = loss_figure(snap.history, snap.config.epochs), accuracy_figure(snap.history, snap.config.epochs)
                    plot_cache.update(key=key, plots=(loss_plot.postprocess(figs[0]), acc_plot.postprocess(figs[1])))
                return plot_cache["plots"]

        def refresh(version: int, plots_seen):
            snap = app.runner.snapshot()
            if snap is None or (snap.version == version and not snap.running):
                return [gr.skip()] * len(refresh_outputs)
            if snap.version == version:  # nothing new, but keep the elapsed time moving
                return [progress_html(snap)] + [gr.skip()] * (len(refresh_outputs) - 1)
            outs: list = [progress_html(snap)]
            plots_key = (snap.job_id, len(snap.history))
            outs += [gr.skip(), gr.skip()] if plots_seen == plots_key else list(epoch_plots(snap))
            outs.append(results_markdown(snap))
            if snap.state == "finished" and snap.result is not None and snap.result.test is not None:
                outs.append(gr.update(value=confusion_figure(snap.result.test.confusion, snap.result.classes), visible=True))
                outs.append(gr.update(value=wrong_gallery(snap), visible=True))
            else:
                outs += [gr.update(visible=False), gr.update(visible=False)]
            if snap.running:
                outs += [gr.skip(), gr.skip()]
            else:
                choices, _ = checkpoint_choices(app)  # not value=: a tick must not undo what the user picked
                outs += [gr.update(choices=choices), model_card(app)]
            outs += [snap.version, plots_key]
            return outs

        timer.tick(refresh, [seen_version, seen_plots], refresh_outputs, show_progress="hidden", concurrency_limit=None, api_visibility="private")

        def refresh_list():
            choices, active = checkpoint_choices(app)
            return gr.update(choices=choices, value=active)

        def use_checkpoint(path: str | None):
            if not path:
                raise gr.Error("Choose a checkpoint first.")
            try:
                app.activate(Path(path))
            except CheckpointError as e:
                raise gr.Error(f"{e}. The active model is unchanged.") from None
            gr.Info(f"{Path(path).name} now answers predictions.")
            return refresh_list(), model_card(app)

        refresh_btn.click(refresh_list, None, ckpt, api_visibility="private")
        use_btn.click(use_checkpoint, ckpt, [ckpt, card], api_visibility="private")

        # API for scripts: train and stream per-epoch numbers; a second call while one runs is refused.
        def train_api(
            data: str, model_name: str = DEFAULT_MODEL, n_epochs: int = 20, learning_rate: float = 0.001, batch: int = 64, seed_: int = 0
        ) -> Iterator[dict]:
            """Train on a folder (empty: the built-in pictures); yields the run's state after every change."""
            source_ = BUILTIN if not data else FOLDER
            snap, _ = start_training(app, source_, data, None, None, model_name, n_epochs, learning_rate, batch, seed_)
            version = -1
            while True:
                snap = app.runner.wait_for_update(version, timeout=1.0)
                if snap is None:
                    continue
                if snap.version != version:
                    version = snap.version
                    yield _api_snapshot(snap)
                if not snap.running:
                    return

        gr.api(train_api, api_name="train", concurrency_limit=None)

        def on_load():
            choices, active = checkpoint_choices(app)
            snap = app.runner.snapshot()
            if snap is not None and snap.running:  # a reload mid-run: show the settings of the run on screen
                c = snap.config
                settings = [c.model, c.epochs, c.lr, c.batch_size, c.seed]
            else:
                settings = [gr.skip()] * 5
            return gr.update(choices=choices, value=active), model_card(app), under_the_hood(DEFAULT_MODEL, 20, 0.001, 64, 0), -1, *settings

        demo.load(on_load, None, [ckpt, card, hood, seen_version, model, epochs, lr, batch_size, seed], api_visibility="private")
    return demo


def _api_snapshot(snap: JobSnapshot) -> dict:
    out = {
        "state": snap.state,
        "epochs": [asdict(h) for h in snap.history],
        "progress": asdict(snap.progress) if snap.progress else None,
        "error": snap.error,
        "checkpoint": str(snap.checkpoint) if snap.checkpoint else None,
    }
    if snap.result is not None and snap.result.test is not None:
        out["test"] = snap.result.test.to_dict()
    return out


LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _host_port(netloc: str) -> tuple[str, str]:
    """(host, port) of a Host header or an origin's netloc, lower-case; port "" when absent."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):  # [::1]:7860
        host, _, rest = netloc[1:].partition("]")
        return host, rest.removeprefix(":")
    host, _, port = netloc.partition(":")
    return host, port


class SameOriginGuard:
    """ASGI middleware in front of Gradio: only this app's own pages may call it.

    Gradio withholds CORS headers from other origins, but their requests still run: a page on any
    web site could post a form or upload a file to http://127.0.0.1:7860 (CSRF), or point its own
    host name at 127.0.0.1 (DNS rebinding) and then drive the app, folder paths included. So a
    request whose Origin is another site is refused with 403, and while the app listens on loopback
    only, so is one whose Host is not localhost/127.0.0.1/[::1]. Requests without an Origin header
    (gradio_client and other scripts, page loads) pass.
    """

    def __init__(self, app, loopback_only: bool = True) -> None:
        self.app = app
        self.loopback_only = loopback_only

    def refusal(self, headers: Headers) -> str | None:
        host, port = _host_port(headers.get("host", ""))
        if self.loopback_only and host not in LOCAL_HOSTS:
            return f"host {host!r} is not this computer"
        origin = headers.get("origin")
        if origin is None:
            return None
        o_host, o_port = _host_port(urlsplit(origin).netloc) if "://" in origin else ("", "")
        local = o_host in LOCAL_HOSTS and host in LOCAL_HOSTS
        if (o_host, o_port) == (host, port) or (local and o_port == port):
            return None
        return f"origin {origin!r} is not this app"

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            why = self.refusal(Headers(scope=scope))
            if why is not None:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await PlainTextResponse(f"fishcat refused this request: {why}", status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="fishcat web app")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this computer only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="also make a public gradio.live link (off by default)")
    parser.add_argument("--checkpoints", default=str(paths.CHECKPOINT_DIR), help="checkpoint folder")
    parser.add_argument("--data-dir", default=str(paths.DATA_DIR), help="where uploads, extracted data sets and caches go")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    args = parser.parse_args(argv)
    app = FishcatApp(Path(args.checkpoints), Path(args.data_dir), args.device)
    app.load_initial_model()
    for err in app.startup_errors:
        print(f"warning: {err}", flush=True)
    if app.active.predictor is None:
        print("No usable checkpoint: the app starts without a model; train one in the Train tab.", flush=True)
    demo = build_ui(app)
    demo.queue(default_concurrency_limit=4)
    print(f"fishcat: open http://{args.host}:{args.port} in your browser (Ctrl+C to quit)", flush=True)
    demo.launch(
        server_name=args.host,  # explicit, so GRADIO_SERVER_NAME in the environment cannot widen it
        server_port=args.port,
        share=args.share,
        max_file_size=MAX_UPLOAD,
        allowed_paths=[str(paths.ASSETS_DIR)],
        show_error=True,
        css=CSS,
        ssr_mode=False,
        strict_cors=True,  # Gradio's default, stated: no CORS grant for "null" or foreign origins
        # Host checks only while nothing but this computer can connect (not with --host or --share).
        app_kwargs={"middleware": [Middleware(SameOriginGuard, loopback_only=args.host in LOCAL_HOSTS and not args.share)]},
    )


if __name__ == "__main__":
    main()
