"""Render images into realistic web pages with headless Chromium and screenshot them.

Used to check how well ``fishcat.trim.trim_screenshot`` recovers the embedded picture:
the true placement of every picture is read from the page and stored in ``boxes.json``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import io
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
VIEWPORT = {"width": 1280, "height": 800}

WORDS = (
    "the quick brown fox jumps over lazy dog while our cat watches fish swim in a "
    "small glass bowl near window light morning coffee table garden river lake "
    "photo story readers community update weekly share comment subscribe about "
    "pets aquarium tank water food health tips guide owners breed species colour"
).split()

THEMES = [
    {"name": "light", "bg": "#ffffff", "fg": "#222222", "muted": "#666666", "panel": "#f4f4f4", "line": "#dddddd"},
    {"name": "sepia", "bg": "#f7f3ea", "fg": "#3b3125", "muted": "#7a6a55", "panel": "#efe8da", "line": "#d8ccb8"},
    {"name": "grey", "bg": "#f0f2f5", "fg": "#1c1e21", "muted": "#65676b", "panel": "#ffffff", "line": "#d0d3d8"},
    {"name": "dark", "bg": "#1e1f22", "fg": "#dddddd", "muted": "#9a9a9a", "panel": "#2b2d31", "line": "#3a3c42"},
    {"name": "navy", "bg": "#0f172a", "fg": "#e2e8f0", "muted": "#94a3b8", "panel": "#1e293b", "line": "#334155"},
]
HEADER_COLOURS = ["#3b5998", "#d32f2f", "#00796b", "#222222", "#ff6f00", "#5e35b1", "#ffffff", "#f5f5f5"]
AD_COLOURS = ["#e91e63", "#9c27b0", "#3f51b5", "#03a9f4", "#4caf50", "#ff9800", "#795548", "#607d8b"]


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(_sentence(rng, rng.randint(6, 16)) for _ in range(sentences))


def _data_uri(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    mime = "jpeg" if suffix in ("jpg", "jpeg") else suffix
    return f"data:image/{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _browser_chrome(rng: random.Random, title: str) -> str:
    # A fake tab strip and address bar, as seen in a full-window screenshot.
    dark = rng.random() < 0.3
    strip, tab, bar, text = ("#202124", "#35363a", "#35363a", "#e8eaed") if dark else ("#dee1e6", "#ffffff", "#ffffff", "#3c4043")
    url = f"https://www.{rng.choice(WORDS)}{rng.choice(WORDS)}.com/{rng.choice(WORDS)}/{rng.randint(100, 99999)}"
    return f"""
<div style="background:{strip};height:38px;display:flex;align-items:flex-end;padding-left:80px;position:relative">
  <span style="position:absolute;left:14px;top:13px">
    <i style="display:inline-block;width:12px;height:12px;border-radius:6px;background:#ff5f57;margin-right:6px"></i><i style="display:inline-block;width:12px;height:12px;border-radius:6px;background:#febc2e;margin-right:6px"></i><i style="display:inline-block;width:12px;height:12px;border-radius:6px;background:#28c840"></i>
  </span>
  <div style="background:{tab};color:{text};width:220px;height:30px;border-radius:8px 8px 0 0;font:12px sans-serif;line-height:30px;padding-left:12px;overflow:hidden;white-space:nowrap">{html.escape(title)}</div>
</div>
<div style="background:{bar};height:38px;display:flex;align-items:center;border-bottom:1px solid #c6c6c6;color:{text};font:14px sans-serif">
  <span style="margin:0 10px 0 14px">&#8592;</span><span style="margin-right:10px">&#8594;</span><span style="margin-right:14px">&#8635;</span>
  <div style="flex:1;background:{strip};border-radius:14px;height:28px;line-height:28px;padding-left:14px;margin-right:60px">{html.escape(url)}</div>
</div>"""


def build_page(rng: random.Random, image_uri: str, natural: tuple[int, int], thumbs: list[str]) -> tuple[str, dict[str, Any]]:
    """Return the HTML for one page and a description of the random layout choices."""
    theme = rng.choice(THEMES)
    title = _sentence(rng, rng.randint(3, 7))[:-1]
    chrome = rng.random() < 0.5
    sidebar = rng.choice(["left", "right", "right", "none"])
    header_bg = rng.choice(HEADER_COLOURS)
    header_fg = "#222222" if header_bg in ("#ffffff", "#f5f5f5") else "#ffffff"
    frame = rng.choice(["none", "none", "border", "shadow", "rounded"])
    floated = rng.random() < 0.2
    font = rng.choice(["sans-serif", "serif", "Liberation Sans, sans-serif", "DejaVu Sans, sans-serif"])
    font_size = rng.choice([13, 14, 15, 16, 17])
    column = rng.randint(560, 820)
    w, h = natural
    if floated:
        display_w = min(w, rng.randint(260, 380))
    elif rng.random() < 0.5:
        display_w = min(w, column)  # natural size, shrunk only when the column is narrower
    else:
        display_w = rng.randint(min(300, column), column)
    display_h = display_w * h / w
    if display_h > 560:
        display_w = int(display_w * 560 / display_h)

    frame_css = {
        "none": "",
        "border": f"border:1px solid {theme['line']};padding:6px;background:{theme['panel']};",
        "shadow": "box-shadow:0 4px 18px rgba(0,0,0,0.35);",
        "rounded": "border-radius:10px;overflow:hidden;",
    }[frame]
    img_radius = "border-radius:10px;" if frame == "rounded" else ""
    float_css = f"float:{rng.choice(['left', 'right'])};margin:4px 18px 10px 0;" if floated else "margin:18px 0;"

    nav = " ".join(
        f'<a style="color:{header_fg};margin-right:22px;text-decoration:none">{rng.choice(WORDS).capitalize()}</a>'
        for _ in range(rng.randint(3, 7))
    )
    side_items = "".join(
        f'<li style="margin:7px 0"><a style="color:{theme["fg"]};text-decoration:none">{_sentence(rng, rng.randint(2, 5))[:-1]}</a></li>'
        for _ in range(rng.randint(6, 14))
    )
    side_thumbs = ""
    if thumbs and rng.random() < 0.4:
        side_thumbs = "".join(
            f'<img src="{t}" style="width:{rng.randint(56, 90)}px;height:auto;margin:6px 6px 0 0;vertical-align:top">'
            for t in thumbs
        )
    ad = ""
    if rng.random() < 0.3:
        ad = (
            '<div style="margin-top:16px;height:120px;border-radius:6px;'
            f'background:linear-gradient({rng.randint(0, 180)}deg,{rng.choice(AD_COLOURS)},{rng.choice(AD_COLOURS)});'
            'color:#fff;font:bold 18px sans-serif;display:flex;align-items:center;justify-content:center">'
            f"{rng.choice(WORDS).upper()} SALE</div>"
        )
    sidebar_html = (
        f'<aside style="width:{rng.randint(200, 280)}px;flex:none;background:{theme["panel"]};padding:14px 16px;'
        f'color:{theme["fg"]};border-radius:4px">'
        f'<h3 style="margin:0 0 8px 0;font-size:15px">{_sentence(rng, 2)[:-1]}</h3><ul style="padding-left:18px;margin:0">{side_items}</ul>'
        f"{side_thumbs}{ad}</aside>"
    )
    main_html = f"""
<main style="width:{column}px;flex:none;color:{theme['fg']}">
  <div style="color:{theme['muted']};font-size:12px">{rng.choice(WORDS).capitalize()} &rsaquo; {rng.choice(WORDS).capitalize()} &middot; {rng.randint(1, 28)} min read</div>
  <h1 style="font-size:{rng.randint(22, 32)}px;margin:8px 0 10px 0">{html.escape(title)}</h1>
  <p style="margin:0 0 10px 0">{_paragraph(rng, rng.randint(1, 3))}</p>
  <figure style="margin:0;{float_css}display:{'block' if floated else 'inline-block'};{frame_css}">
    <img id="target" src="{image_uri}" style="display:block;width:{display_w}px;height:auto;{img_radius}">
    {'<figcaption style="font-size:12px;color:' + theme['muted'] + ';margin-top:6px">' + _sentence(rng, 8) + '</figcaption>' if rng.random() < 0.6 else ''}
  </figure>
  <p>{_paragraph(rng, rng.randint(3, 6))}</p>
  <p>{_paragraph(rng, rng.randint(3, 6))}</p>
</main>"""
    parts = [main_html]
    if sidebar == "left":
        parts.insert(0, sidebar_html)
    elif sidebar == "right":
        parts.append(sidebar_html)
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>
<body style="margin:0;background:{theme['bg']};font-family:{font};font-size:{font_size}px;line-height:1.45">
{_browser_chrome(rng, title) if chrome else ''}
<header style="background:{header_bg};color:{header_fg};height:{rng.randint(44, 64)}px;display:flex;align-items:center;padding:0 24px;border-bottom:1px solid {theme['line']}">
  <b style="font-size:20px;margin-right:40px">{rng.choice(WORDS).capitalize()}{rng.choice(WORDS)}</b>{nav}
</header>
<div style="display:flex;gap:{rng.randint(20, 48)}px;justify-content:center;padding:{rng.randint(12, 30)}px 20px">{''.join(parts)}</div>
</body></html>"""
    layout = {
        "theme": theme["name"], "chrome": chrome, "sidebar": sidebar, "frame": frame,
        "floated": floated, "display_width": display_w, "thumbs": bool(side_thumbs), "ad": bool(ad),
    }
    return body, layout


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def make_screenshots(src: Path, out: Path, limit: int | None, seed: int, dpr: float) -> None:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    boxes_path = out / "boxes.json"
    boxes: dict[str, Any] = json.loads(boxes_path.read_text()) if boxes_path.exists() else {}
    classes = sorted(d for d in src.iterdir() if d.is_dir())
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT, device_scale_factor=dpr)
        for cls in classes:
            images = list_images(cls)
            if limit is not None:
                images = images[:limit]
            (out / cls.name).mkdir(exist_ok=True)
            for i, path in enumerate(images):
                # Seed per image so a rerun reproduces the same page for the same picture.
                digest = hashlib.sha256(f"{seed}:{cls.name}/{path.name}".encode()).hexdigest()
                rng = random.Random(int(digest[:16], 16))
                with Image.open(path) as im:
                    natural = im.size
                others = [p for p in images if p != path]
                thumbs = [_data_uri(p) for p in rng.sample(others, min(3, len(others)))]
                doc, layout = build_page(rng, _data_uri(path), natural, thumbs)
                page.set_content(doc, wait_until="load")
                page.wait_for_function("document.getElementById('target').complete")
                # Bring the picture into view the way a person would before taking a screenshot.
                rect = page.evaluate("(() => {const r = document.getElementById('target').getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom];})()")
                if rect[3] > VIEWPORT["height"]:
                    page.evaluate(f"window.scrollBy(0, {rect[1] - rng.randint(30, 160)})")
                    rect = page.evaluate("(() => {const r = document.getElementById('target').getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom];})()")
                left = max(0, round(rect[0] * dpr))
                top = max(0, round(rect[1] * dpr))
                right = min(round(VIEWPORT["width"] * dpr), round(rect[2] * dpr))
                bottom = min(round(VIEWPORT["height"] * dpr), round(rect[3] * dpr))
                name = f"{cls.name}/{path.stem}.png"
                page.screenshot(path=str(out / name))
                boxes[name] = {"box": [left, top, right, bottom], "source": str(path), "layout": layout}
                print(f"{name} box={boxes[name]['box']} {layout}", file=sys.stderr)
        browser.close()
    boxes_path.write_text(json.dumps(boxes, indent=1))


def iou(a: list[int] | tuple[int, ...], b: list[int] | tuple[int, ...]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def evaluate(out: Path, save_crops: Path | None, jpeg: int | None) -> None:
    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from fishcat.trim import trim_screenshot

    boxes = json.loads((out / "boxes.json").read_text())
    results = []
    times = []
    cpu_times = []
    for name, info in sorted(boxes.items()):
        path = out / name
        if not path.exists():
            continue
        with Image.open(path) as im:
            image = im.convert("RGB")
        if jpeg is not None:
            # Simulate a screenshot that was saved or shared as JPEG.
            buf = io.BytesIO()
            image.save(buf, "JPEG", quality=jpeg)
            image = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
        t0, c0 = time.perf_counter(), time.process_time()
        crop, box = trim_screenshot(image)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
        score = iou(box, info["box"])
        results.append((score, name, tuple(box), info["box"], tuple(box) == (0, 0, *image.size)))
        if save_crops is not None:
            target = save_crops / name
            target.parent.mkdir(parents=True, exist_ok=True)
            crop.save(target)
    if not results:
        print("no screenshots found")
        return
    scores = sorted(r[0] for r in results)
    print(f"images: {len(scores)}")
    print(f"IoU median {statistics.median(scores):.3f}  mean {statistics.fmean(scores):.3f}  min {scores[0]:.3f}")
    for t in (0.95, 0.9, 0.8, 0.5):
        print(f"  IoU >= {t}: {sum(s >= t for s in scores) / len(scores):.1%}")
    unchanged = sum(r[4] for r in results)
    wrong = sum(1 for r in results if r[0] < 0.5 and not r[4])
    print(f"returned unchanged: {unchanged}; cropped to the wrong place (IoU < 0.5): {wrong}")
    print(
        f"time per image: wall median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms;"
        f" CPU median {statistics.median(cpu_times) * 1000:.1f} ms, max {max(cpu_times) * 1000:.1f} ms"
    )
    print("worst:")
    for score, name, box, truth, _ in sorted(results)[:8]:
        print(f"  {score:.3f} {name} got {list(box)} true {truth} {boxes[name]['layout']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", type=Path, nargs="?", help="folder of images in class subfolders")
    parser.add_argument("output", type=Path, help="folder for screenshots and boxes.json")
    parser.add_argument("--limit", type=int, default=None, help="at most N images per class")
    parser.add_argument("--seed", type=int, default=0, help="layout seed")
    parser.add_argument("--dpr", type=float, default=1.0, help="device pixel ratio (2 gives 2560x1600 screenshots)")
    parser.add_argument("--evaluate", action="store_true", help="run trim_screenshot on OUTPUT and report IoU instead")
    parser.add_argument("--save-crops", type=Path, default=None, help="with --evaluate: write the crops here")
    parser.add_argument("--jpeg", type=int, default=None, help="with --evaluate: JPEG-compress screenshots at this quality first")
    args = parser.parse_args(argv)
    if args.evaluate:
        evaluate(args.output, args.save_crops, args.jpeg)
    else:
        if args.source is None:
            parser.error("source folder is required unless --evaluate")
        make_screenshots(args.source, args.output, args.limit, args.seed, args.dpr)


if __name__ == "__main__":
    main()
