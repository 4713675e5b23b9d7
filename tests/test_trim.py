"""Tests for fishcat.trim.trim_screenshot on generated screenshots (no real photos needed)."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont

from fishcat.trim import trim_screenshot

WORDS = "cat fish photo water tank garden window light story share weekly comment guide river lake food".split()


def make_photo(width: int, height: int, seed: int) -> Image.Image:
    """A natural-looking stand-in for a photo: smooth colour field, soft blobs, texture and sensor noise."""
    rng = np.random.default_rng(seed)
    # The smooth part (colour field and blobs) is built small and scaled up, which keeps this fast.
    sw, sh = max(2, width // 8), max(2, height // 8)
    base = rng.integers(30, 226, size=(6, 6, 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(base).resize((sw, sh), Image.Resampling.BICUBIC), dtype=np.float32)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    for _ in range(8):
        cx, cy = rng.uniform(0, sw), rng.uniform(0, sh)
        r = rng.uniform(0.05, 0.25) * min(sw, sh) + 0.5
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None] * 0.7
        field = field * (1 - blob) + rng.uniform(0, 255, 3).astype(np.float32) * blob
    smooth = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC)
    # Mid-frequency texture (fur, leaves, ripples) plus per-pixel noise.
    texture = rng.normal(0, 14, size=(height // 3 + 1, width // 3 + 1, 3)).astype(np.float32)
    texture = texture.repeat(3, 0).repeat(3, 1)[:height, :width]
    noise = rng.normal(0, 4, size=(height, width, 3)).astype(np.float32)
    return Image.fromarray(np.clip(np.asarray(smooth, dtype=np.float32) + texture + noise, 0, 255).astype(np.uint8))


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def _paragraph(draw: ImageDraw.ImageDraw, x: int, y: int, width: int, lines: int, fill: tuple[int, int, int], rng: random.Random) -> None:
    """Draw ``lines`` lines of random words, each roughly ``width`` pixels wide."""
    font = _font()
    for i in range(lines):
        words: list[str] = []
        while draw.textlength(" ".join(words + ["watches"]), font=font) < width:
            words.append(rng.choice(WORDS))
        draw.text((x, y + i * 16), " ".join(words), fill=fill, font=font)


def browser_screenshot(seed: int = 0) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A photo on a web page in a browser window: tab strip, address bar, text around, scroll bar."""
    rng = random.Random(seed)
    img = Image.new("RGB", (1280, 800), (255, 255, 255))
    d = ImageDraw.Draw(img)
    font = _font()
    d.rectangle((0, 0, 1280, 36), fill=(222, 225, 230))
    for i, colour in enumerate([(255, 95, 87), (254, 188, 46), (40, 200, 64)]):
        d.ellipse((12 + 20 * i, 12, 24 + 20 * i, 24), fill=colour)
    d.rounded_rectangle((80, 6, 320, 40), radius=8, fill=(255, 255, 255))
    d.text((92, 14), "Cats and fish - Weekly photo story", fill=(60, 64, 67), font=font)
    d.rounded_rectangle((90, 42, 1180, 68), radius=13, fill=(241, 243, 244))
    d.text((106, 49), "https://www.example.com/pets/photos/2024/cat-by-the-window", fill=(32, 33, 36), font=font)
    d.text((14, 48), "<  >  C", fill=(95, 99, 104), font=font)
    d.line((0, 72, 1280, 72), fill=(200, 200, 200))
    d.text((60, 90), "Weekly photo story", fill=(20, 20, 20), font=font)
    _paragraph(d, 60, 112, 860, 4, (40, 40, 40), rng)
    photo = make_photo(500, 340, seed)
    box = (420, 200, 920, 540)
    img.paste(photo, box[:2])
    _paragraph(d, 60, 200, 330, 20, (40, 40, 40), rng)  # text wrapping to the left of the picture
    d.text((420, 548), "Figure 1: the cat watches the fish tank.", fill=(110, 110, 110), font=font)
    _paragraph(d, 60, 580, 860, 10, (40, 40, 40), rng)
    _paragraph(d, 980, 110, 250, 30, (30, 60, 160), rng)  # sidebar links
    d.rectangle((1266, 73, 1280, 800), fill=(241, 241, 241))
    d.rounded_rectangle((1268, 100, 1278, 300), radius=5, fill=(193, 193, 193))
    return img, box


def dark_app_screenshot(seed: int = 1) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A photo in a dark-theme app: toolbar, sidebar with text, status bar."""
    rng = random.Random(seed)
    img = Image.new("RGB", (1440, 900), (30, 30, 30))
    d = ImageDraw.Draw(img)
    font = _font()
    d.rectangle((0, 0, 1440, 44), fill=(45, 45, 48))
    for i in range(8):
        d.rectangle((300 + 36 * i, 12, 320 + 36 * i, 32), outline=(200, 200, 200), width=2)
    d.text((14, 16), "Photo Viewer - cat_and_fish.jpg", fill=(220, 220, 220), font=font)
    d.rectangle((0, 44, 260, 870), fill=(37, 37, 38))
    for i in range(36):
        d.text((18, 56 + 22 * i), " ".join(rng.choice(WORDS) for _ in range(3)) + ".jpg", fill=(204, 204, 204), font=font)
    d.rectangle((0, 870, 1440, 900), fill=(0, 122, 204))
    d.text((12, 878), "Ready   800 x 560   100%   sRGB   12 of 36", fill=(255, 255, 255), font=font)
    box = (420, 150, 1220, 710)
    img.paste(make_photo(800, 560, seed), box[:2])
    return img, box


def letterboxed(seed: int = 2) -> tuple[Image.Image, tuple[int, int, int, int]]:
    img = Image.new("RGB", (1280, 720), (0, 0, 0))
    box = (0, 90, 1280, 630)
    img.paste(make_photo(1280, 540, seed), box[:2])
    return img, box


def jpeg(img: Image.Image, quality: int = 80) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def assert_close(box: tuple[int, int, int, int], expected: tuple[int, int, int, int], tol: int) -> None:
    assert all(abs(a - b) <= tol for a, b in zip(box, expected)), f"{box} not within {tol} px of {expected}"


def check_result(img: Image.Image, crop: Image.Image, box: tuple[int, int, int, int]) -> None:
    left, top, right, bottom = box
    assert 0 <= left < right <= img.width and 0 <= top < bottom <= img.height
    assert crop.size == (right - left, bottom - top)
    assert crop.mode == "RGB"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_browser_window(seed: int) -> None:
    img, expected = browser_screenshot(seed)
    crop, box = trim_screenshot(img)
    check_result(img, crop, box)
    assert_close(box, expected, 8)
    assert np.array_equal(np.asarray(crop), np.asarray(img.crop(box)))


def test_browser_window_saved_as_jpeg() -> None:
    img, expected = browser_screenshot(3)
    crop, box = trim_screenshot(jpeg(img))
    assert_close(box, expected, 8)


@pytest.mark.parametrize("seed", [1, 4])
def test_dark_app_with_sidebar_and_status_bar(seed: int) -> None:
    img, expected = dark_app_screenshot(seed)
    crop, box = trim_screenshot(img)
    check_result(img, crop, box)
    assert_close(box, expected, 8)


def test_letterboxed_photo() -> None:
    img, expected = letterboxed()
    _, box = trim_screenshot(img)
    assert_close(box, expected, 8)


def test_pillarboxed_photo() -> None:
    img = Image.new("RGB", (1280, 720), (12, 12, 12))
    img.paste(make_photo(960, 720, 5), (160, 0))
    _, box = trim_screenshot(img)
    assert_close(box, (160, 0, 1120, 720), 8)


@pytest.mark.parametrize("size,seed", [((800, 600), 0), ((500, 375), 1), ((375, 500), 2), ((1920, 1080), 3)])
def test_plain_photo_unchanged(size: tuple[int, int], seed: int) -> None:
    img = make_photo(*size, seed)
    crop, box = trim_screenshot(img)
    left, top, right, bottom = box
    assert (right - left) * (bottom - top) >= 0.95 * size[0] * size[1]
    check_result(img, crop, box)


def test_plain_photo_as_jpeg_unchanged() -> None:
    img = jpeg(make_photo(640, 480, 7), quality=70)
    _, box = trim_screenshot(img)
    assert box == (0, 0, 640, 480)


@pytest.mark.parametrize(
    "img",
    [
        Image.new("RGB", (640, 480), (128, 128, 128)),
        Image.new("RGB", (1, 1), (10, 20, 30)),
        Image.new("RGB", (3, 500), (255, 255, 255)),
        Image.new("RGB", (500, 3), (0, 0, 0)),
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (3, 500, 3), dtype=np.uint8)),
    ],
    ids=["uniform", "1x1", "3x500", "500x3", "noise-3x500"],
)
def test_degenerate_images_unchanged(img: Image.Image) -> None:
    crop, box = trim_screenshot(img)
    assert box == (0, 0, img.width, img.height)
    assert crop.size == img.size


def test_text_only_page_unchanged() -> None:
    img = Image.new("RGB", (1024, 768), (255, 255, 255))
    _paragraph(ImageDraw.Draw(img), 40, 40, 900, 40, (20, 20, 20), random.Random(0))
    _, box = trim_screenshot(img)
    assert box == (0, 0, 1024, 768)


def test_other_modes_accepted() -> None:
    img, expected = browser_screenshot(0)
    for mode in ("RGBA", "L", "P"):
        crop, box = trim_screenshot(img.convert(mode))
        assert crop.mode == "RGB"
        assert crop.size == (box[2] - box[0], box[3] - box[1])


def test_deterministic() -> None:
    img, _ = dark_app_screenshot(2)
    assert trim_screenshot(img)[1] == trim_screenshot(img.copy())[1]


def test_hidpi_screenshot() -> None:
    # Speed is measured by bench/make_screenshots.py --evaluate, not asserted here.
    small, _ = browser_screenshot(0)
    img = small.resize((2560, 1600), Image.Resampling.NEAREST)  # a HiDPI screenshot
    _, box = trim_screenshot(img)
    assert_close(box, (840, 400, 1840, 1080), 16)


@st.composite
def random_images(draw: st.DrawFn) -> Image.Image:
    width = draw(st.integers(1, 300))
    height = draw(st.integers(1, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(["noise", "flat", "blocks", "few-colours", "photo-on-page"]))
    rng = np.random.default_rng(seed)
    if kind == "noise":
        arr = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    elif kind == "flat":
        arr = np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (height, width, 3)).copy()
    elif kind == "blocks":
        small = rng.integers(0, 256, (max(1, height // 16), max(1, width // 16), 3), dtype=np.uint8)
        arr = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.NEAREST))
    elif kind == "few-colours":
        palette = rng.integers(0, 256, (3, 3), dtype=np.uint8)
        arr = palette[rng.integers(0, 3, (height, width))]
    else:
        arr = np.full((height, width, 3), 255, dtype=np.uint8)
        ph, pw = max(1, height // 2), max(1, width // 2)
        arr[height // 4 : height // 4 + ph, width // 4 : width // 4 + pw] = np.asarray(make_photo(pw, ph, seed % 1000))
    return Image.fromarray(arr)


@settings(max_examples=150, deadline=None)
@given(random_images())
def test_never_raises_and_box_in_bounds(img: Image.Image) -> None:
    crop, box = trim_screenshot(img)
    check_result(img, crop, box)
