"""RELIABILITY.md, "Images": bad and unusual pictures met through the app's handlers and the CLI.

The loader itself is unit-tested in tests/test_images.py; here every row is checked where a user meets
it: app.predict_api / app.predict_one (gr.Error with a clear message, then a good prediction still
works) and `python -m fishcat predict` (one "error:" line per bad file, exit status 2, no traceback).
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import app as webapp
from _reliability import (
    PROJECT,
    SPEC,
    assert_one_line_errors,
    assert_still_serving,
    encode,
    gr_message,
    make_checkpoint,
    new_app,
    picture,
    run_cli,
    write,
)
from fishcat import predict as predict_module
from fishcat.images import MAX_PIXELS, ImageError
from fishcat.preprocess import load_for_model, normalize

ORIENTATION = 0x0112


# ---------------------------------------------------------------- files


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def zero_png(width: int, height: int, bit_depth: int = 8, colour_type: int = 0) -> bytes:
    """A complete, valid PNG of zeros: every row is present, so only a size check can refuse it early."""
    channels = {0: 1, 2: 3}[colour_type]
    row = b"\x00" * (1 + (width * channels * bit_depth + 7) // 8)
    packer = zlib.compressobj(1)
    rows_per_call = max(1, (1 << 22) // len(row))
    block = row * rows_per_call
    parts = []
    for _ in range(height // rows_per_call):
        parts.append(packer.compress(block))
    parts.append(packer.compress(row * (height % rows_per_call)))
    parts.append(packer.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b"")


def bad_crc_png() -> bytes:
    """Pixels intact, the IDAT chunk's stored CRC damaged (a flipped bit in transit or on disk)."""
    data = bytearray(encode(picture((16, 16)), "PNG"))
    tag = data.index(b"IDAT")
    length = int.from_bytes(data[tag - 4 : tag], "big")
    data[tag + 4 + length] ^= 0xFF
    return bytes(data)


# name -> (bytes, what the message must say)
BAD_FILES: dict[str, tuple[bytes, str]] = {
    "notes.png": (b"hello, this is a text file and not a picture\n" * 20, r"not an image or unsupported format"),
    "page.png": (b"<!DOCTYPE html><html><body><img src=x></body></html>\n", r"not an image or unsupported format"),
    "paper.png": (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n", r"not an image or unsupported format"),
    "drawing.png": (
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
        r"not an image or unsupported format",
    ),
    "empty.png": (b"", r"not an image or unsupported format \(empty file\)"),
    "one-byte.png": (b"\x89", r"not an image or unsupported format"),
    "cut.jpg": (encode(picture((64, 48)), "JPEG")[:300], r"corrupt or truncated image"),
    "cut.png": (encode(picture((64, 48)), "PNG")[:-40], r"corrupt or truncated image"),
    "bad-crc.png": (bad_crc_png(), r"corrupt or truncated image \(bad CRC in PNG IDAT chunk\)"),
    "iphone.heic": (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, r"unsupported format HEIC: export as JPEG or PNG"),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("images")


@pytest.fixture(scope="module")
def fc(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("app")
    ckpt = make_checkpoint(root / "cf.pt", ("cat", "fish"), seed=3)
    return new_app(root, ckpt)


@pytest.fixture(scope="module")
def good(folder: Path) -> Path:
    return write(folder / "good.png", encode(picture(), "PNG"))


@pytest.fixture(scope="module")
def bombs(folder: Path) -> dict[str, Path]:
    """Real, complete PNGs of zeros (each a few hundred KB on disk)."""
    return {
        # 900 million pixels: Pillow's own DecompressionBombError while reading the header.
        "bomb-30000.png": write(folder / "bomb-30000.png", zero_png(30000, 30000, bit_depth=1)),
        # 72 million RGB pixels (216 MB decoded): under Pillow's limit, over fishcat's MAX_PIXELS.
        "bomb-9000.png": write(folder / "bomb-9000.png", zero_png(9000, 8000, colour_type=2)),
    }


@pytest.fixture(scope="module")
def photo(folder: Path) -> Path:
    """An 8000x6000 JPEG, like a phone's full-resolution photo."""
    w, h = 8000, 6000
    g = (np.arange(w, dtype=np.uint16)[None, :] // 40 + np.arange(h, dtype=np.uint16)[:, None] // 30).astype(np.uint8)
    img = Image.fromarray(np.stack([g, g[::-1], 255 - g], axis=2))
    path = folder / "photo-8000x6000.jpg"
    img.save(path, quality=80)
    return path


# ---------------------------------------------------------------- not images, damaged images


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_file_is_refused_by_the_app_which_keeps_serving(fc, folder: Path, good: Path, name: str) -> None:
    data, reason = BAD_FILES[name]
    path = write(folder / name, data)
    before = fc.active.predictor
    for handler in (lambda p: webapp.predict_api(fc, p), lambda p: webapp.predict_one(fc, p, True), lambda p: webapp.predict_one(fc, p, False)):
        message = gr_message(handler, str(path))
        assert message.startswith(f"{name}: ")  # names the file the user dropped
        assert re.search(reason, message), message
    assert fc.active.predictor is before
    assert path.read_bytes() == data  # the user's file is untouched
    assert_still_serving(fc, good, {"cat", "fish"})


def test_several_files_with_bad_ones_among_them(fc, folder: Path, good: Path) -> None:
    """The "several images at once" box: each bad file gets its own error card, the good ones a label."""
    paths = [str(write(folder / f"many-{n}", d)) for n, (d, _) in list(BAD_FILES.items())[:4]] + [str(good)]
    items = webapp.predict_many(fc, paths, True)
    assert len(items) == 5
    assert all(caption.startswith("error: many-") for _, caption in items[:4])
    assert items[4][1].endswith(": good.png") and not items[4][1].startswith("error")


def test_cli_predict_reports_each_bad_file_on_one_line(folder: Path, good: Path, bombs: dict[str, Path], tmp_path: Path) -> None:
    """`python -m fishcat predict` on every bad file at once: one error line each, exit 2, the good one answered."""
    ckpt = make_checkpoint(tmp_path / "cli.pt", ("cat", "fish"))
    bad = [str(write(folder / f"cli-{n}", d)) for n, (d, _) in BAD_FILES.items()] + [str(p) for p in bombs.values()]
    proc = run_cli("predict", "--checkpoint", str(ckpt), *bad, str(good))
    assert proc.returncode == 2, proc.stderr
    lines = assert_one_line_errors(proc.stderr, count=len(bad))
    for line, (name, (_, reason)) in zip(lines, BAD_FILES.items()):
        assert line.startswith(f"error: cli-{name}: ")
        assert re.search(reason, line), line
    assert all("image too large" in line for line in lines[len(BAD_FILES) :])
    assert proc.stdout.startswith(f"{good}: ") and proc.stdout.count("\n") == 1


# ---------------------------------------------------------------- size: bombs, big photos, slivers


def test_pixel_bomb_is_refused_by_the_app(fc, bombs: dict[str, Path], good: Path) -> None:
    for name, path in bombs.items():
        gr_message(lambda p: webapp.predict_api(fc, p), str(path), match=rf"^{name}: image too large \(.* limit {MAX_PIXELS}\)")
    assert_still_serving(fc, good)


def test_pixel_bomb_memory_stays_flat(bombs: dict[str, Path], folder: Path) -> None:
    """Peak RSS of a fresh process barely moves while it refuses the bombs; a real large decode does move it."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux /proc for a per-process peak RSS")
    control = write(folder / "control-6000x4000.png", zero_png(6000, 4000, colour_type=2))  # 72 MB decoded, allowed
    script = textwrap.dedent(
        """
        import json, resource, sys
        from fishcat.images import ImageError, load_image

        def peak_mib():
            # VmHWM: this process's peak RSS. (ru_maxrss would also count the parent's peak:
            # Linux carries it over fork and exec.)
            try:
                with open("/proc/self/status") as f:
                    return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024
            except OSError:
                return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        load_image(sys.argv[1])  # warm up the PNG decoder
        base = peak_mib()
        refused = []
        for path in sys.argv[2:-1]:
            try:
                load_image(path)
            except ImageError as e:
                refused.append(str(e))
        bombs_growth = peak_mib() - base
        load_image(sys.argv[-1])  # the control: a legitimate 6000x4000 decode
        print(json.dumps({"refused": refused, "bombs": bombs_growth, "control": peak_mib() - base}))
        """
    )
    good_small = write(folder / "warm.png", encode(picture(), "PNG"))
    out = subprocess.run(
        [sys.executable, "-c", script, str(good_small), *map(str, bombs.values()), str(control)],
        cwd=PROJECT, capture_output=True, text=True, timeout=120, check=True,
    )
    result = json.loads(out.stdout)
    print(f"pixel bombs: peak RSS growth {result['bombs']:.1f} MiB; 6000x4000 control decode {result['control']:.1f} MiB")
    assert len(result["refused"]) == len(bombs) and all("image too large" in r for r in result["refused"])
    assert result["bombs"] < 200  # a decode of either bomb needs 216 MB to 2.7 GB
    assert result["control"] > 50  # the meter does see a real decode


def test_large_photo_is_accepted_and_decoded_reduced(fc, photo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[tuple[int, int]] = []
    real = predict_module.load_image

    def spy(source, **kwargs):
        img = real(source, **kwargs)
        sizes.append(img.size)
        return img

    monkeypatch.setattr(predict_module, "load_image", spy)
    t0 = time.perf_counter()
    probs = webapp.predict_api(fc, str(photo))  # the API trims, like the UI's default
    trimmed_s = time.perf_counter() - t0
    assert set(probs) == {"cat", "fish"}
    assert sizes[-1] == (2000, 1500)  # JPEG draft at 1/4 scale, not 8000x6000
    t0 = time.perf_counter()
    p = fc.active.predictor.predict(str(photo), trim=False)  # the CLI's default
    plain_s = time.perf_counter() - t0
    assert p.size == (1000, 750)  # 1/8 scale is enough for a 64x64 model input
    label, verdict, seen, trim_view, _ = webapp.predict_one(fc, str(photo), True)
    assert seen.size == (224, 224) and trim_view is not None and max(trim_view.size) <= 640
    print(f"8000x6000 JPEG: predict with trim {trimmed_s:.2f}s, without {plain_s:.2f}s")


@pytest.mark.parametrize("size", [(1, 1), (1, 10000), (10000, 1)])
def test_sliver_images(fc, folder: Path, size: tuple[int, int]) -> None:
    path = write(folder / f"sliver-{size[0]}x{size[1]}.png", encode(Image.new("RGB", size, (200, 30, 30)), "PNG"))
    probs = webapp.predict_api(fc, str(path))
    assert set(probs) == {"cat", "fish"}
    _, _, seen, _, _ = webapp.predict_one(fc, str(path), False)
    assert seen.size == (224, 224)


# ---------------------------------------------------------------- pixel modes


def _modes(folder: Path) -> list[tuple[str, Path, Image.Image]]:
    """(name, file in that mode, the RGB picture it must be read as)."""
    base = picture((48, 32), seed=5)
    out = []
    rgba = base.copy()
    rgba.putalpha(255)
    out.append(("RGBA opaque screenshot", write(folder / "rgba.png", encode(rgba, "PNG")), base))
    holed = base.copy()
    holed.putalpha(Image.fromarray(np.where(np.arange(48)[None, :] < 12, 0, 255).repeat(32, 0).astype(np.uint8)))
    white_left = np.asarray(base).copy()
    white_left[:, :12] = 255
    out.append(("RGBA with transparent strip", write(folder / "rgba-holed.png", encode(holed, "PNG")), Image.fromarray(white_left)))
    grey = base.convert("L")
    la = Image.merge("LA", (grey, Image.new("L", grey.size, 255)))
    out.append(("LA", write(folder / "la.png", encode(la, "PNG")), grey.convert("RGB")))
    bits = base.convert("L").point(lambda v: 255 if v > 100 else 0).convert("1")
    out.append(("1-bit", write(folder / "bits.png", encode(bits, "PNG")), bits.convert("L").convert("RGB")))
    pal = base.quantize(16)
    pal.info["transparency"] = 0
    pal_rgb = np.asarray(pal.convert("RGB")).copy()
    pal_rgb[np.asarray(pal) == 0] = 255
    out.append(("palette with transparency", write(folder / "pal.png", encode(pal, "PNG", transparency=0)), Image.fromarray(pal_rgb)))
    return out


def test_modes_give_the_same_result_as_rgb(fc, folder: Path) -> None:
    """RGBA/LA/1-bit/P+transparency: same probabilities as the RGB picture they show (never a 4-vs-3 channel error)."""
    for name, path, expected in _modes(folder):
        reference = write(folder / f"ref-{path.stem}.png", encode(expected, "PNG"))
        for trim in (False, True):
            got = webapp.predict_one(fc, str(path), trim)
            want = webapp.predict_one(fc, str(reference), trim)
            assert got[0] == want[0], name
            assert np.array_equal(np.asarray(got[2]), np.asarray(want[2])), name
        assert webapp.predict_api(fc, str(path)) == webapp.predict_api(fc, str(reference)), name


def test_cmyk_jpeg(fc, folder: Path) -> None:
    cmyk = Image.new("CMYK", (40, 30), (0, 255, 255, 0))  # pure red in print colours
    path = write(folder / "print.jpg", encode(cmyk, "JPEG", quality=95))
    probs, _, seen, _, _ = webapp.predict_one(fc, str(path), False)
    assert set(probs) == {"cat", "fish"}
    r, g, b = seen.getpixel((112, 112))
    assert r > 200 and g < 60 and b < 60


def test_16bit_greyscale_is_scaled_not_saturated(fc, folder: Path) -> None:
    mid = Image.fromarray(np.full((30, 40), 128 * 257, np.uint16))
    path = write(folder / "grey16.png", encode(mid, "PNG"))
    assert Image.open(path).mode.startswith("I")
    _, _, seen, _, _ = webapp.predict_one(fc, str(path), False)
    assert seen.getpixel((5, 5)) == (128, 128, 128)  # Pillow's own convert would give 255
    eight = write(folder / "grey8.png", encode(Image.new("L", (40, 30), 128), "PNG"))
    assert webapp.predict_api(fc, str(path)) == webapp.predict_api(fc, str(eight))


# ---------------------------------------------------------------- EXIF, animation, HEIC/AVIF


@pytest.mark.parametrize(("orientation", "stored_as"), [(6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270)])
def test_exif_orientation_same_prediction_as_upright(fc, folder: Path, orientation: int, stored_as: Image.Transpose) -> None:
    upright = picture((60, 40), seed=7)
    stored = upright.transpose(stored_as)  # what a phone writes: sideways pixels plus an EXIF tag
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    tagged = write(folder / f"exif{orientation}.png", encode(stored, "PNG", exif=exif))
    plain = write(folder / "upright.png", encode(upright, "PNG"))
    untagged = write(folder / f"sideways{orientation}.png", encode(stored, "PNG"))
    for trim in (False, True):
        got = webapp.predict_one(fc, str(tagged), trim)[0]
        assert got == webapp.predict_one(fc, str(plain), trim)[0]
    # The check has teeth: ignoring the tag would have given another answer.
    assert webapp.predict_api(fc, str(untagged)) != webapp.predict_api(fc, str(plain))
    # Same for a JPEG from a camera (lossy, so nearly equal rather than equal).
    jpeg_tagged = write(folder / f"exif{orientation}.jpg", encode(stored, "JPEG", quality=95, exif=exif))
    jpeg_plain = write(folder / "upright.jpg", encode(upright, "JPEG", quality=95))
    a, b = webapp.predict_api(fc, str(jpeg_tagged)), webapp.predict_api(fc, str(jpeg_plain))
    c = webapp.predict_api(fc, str(untagged))
    assert abs(a["cat"] - b["cat"]) < abs(c["cat"] - b["cat"])


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animation_with_many_frames_uses_the_first_frame_in_bounded_time(fc, folder: Path, fmt: str) -> None:
    colours = [(255, 0, 0)] + [(0, 0, 255), (0, 255, 0)] * 150  # 301 frames
    frames = [Image.new("RGB", (64, 64), c) for c in colours]
    params = {"lossless": True} if fmt == "WEBP" else {}
    anim = write(folder / f"anim.{fmt.lower()}", encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=10, **params))
    first = write(folder / f"first.{fmt.lower()}", encode(frames[0], fmt, **params))
    assert Image.open(anim).n_frames == 301
    t0 = time.perf_counter()
    got = webapp.predict_api(fc, str(anim))
    elapsed = time.perf_counter() - t0
    assert got == webapp.predict_api(fc, str(first))
    print(f"{fmt} with 301 frames: {elapsed * 1000:.0f} ms")
    assert elapsed < 10  # decoding all frames would not be "bounded"; generous for a busy CI machine


def test_heic_is_refused_with_advice_and_avif_is_supported(fc, folder: Path) -> None:
    heic = write(folder / "IMG_0001.HEIC", BAD_FILES["iphone.heic"][0])
    gr_message(lambda p: webapp.predict_api(fc, p), str(heic), match=r"^IMG_0001\.HEIC: unsupported format HEIC: export as JPEG or PNG$")
    if "AVIF" not in Image.SAVE:
        pytest.skip("this Pillow build cannot write AVIF")
    avif = write(folder / "photo.avif", encode(Image.new("RGB", (40, 30), (200, 30, 30)), "AVIF"))
    assert set(webapp.predict_api(fc, str(avif))) == {"cat", "fish"}


def test_odd_upload_names(fc, folder: Path) -> None:
    """Unicode, spaces, HTML characters and a 240-byte name: predicted, and errors name the file as given.

    (A 300-character name cannot exist on Linux file systems, NAME_MAX is 255 bytes; 300-character
    names inside uploaded zips are cut to 200 bytes, see test_reliability_data.py.)
    """
    names = ["猫 und 魚 (1).png", "<b>fish & 'cat'.png", "x" * 236 + ".png", "-rf .png"]
    for name in names:
        path = write(folder / name, encode(picture(), "PNG"))
        assert set(webapp.predict_api(fc, str(path))) == {"cat", "fish"}
        bad = write(folder / "bad" / name, b"not an image")
        assert gr_message(lambda p: webapp.predict_api(fc, p), str(bad)).startswith(f"{name}: not an image")


# ---------------------------------------------------------------- property: any image -> a finite model input


ARRAYS = st.sampled_from(
    [
        ("uint8", 1), ("uint8", 2), ("uint8", 3), ("uint8", 4),
        ("uint16", 1), ("int32", 1), ("float32", 1), ("bool", 1),
    ]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=ARRAYS,
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    container=st.sampled_from(["PIL", "PNG", "TIFF", "JPEG", "WEBP"]),
    seed=st.integers(0, 2**31 - 1),
    special=st.sampled_from([None, "nan", "inf", "-inf", "huge"]),
)
def test_load_for_model_any_image_gives_a_finite_input(kind, width, height, container, seed, special) -> None:
    """Any mode, size and dtype -> a (3, S, S) uint8 tensor of the model's input size whose
    normalised form is finite, or ImageError; never another exception."""
    dtype, channels = kind
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    if dtype == "float32":
        arr = rng.normal(0.5, 2.0, size=shape).astype(np.float32)
        if special is not None:
            arr.flat[0] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "huge": 3.4e38}[special]
    elif dtype == "bool":
        arr = rng.integers(0, 2, size=shape).astype(bool)
    else:
        info = np.iinfo(dtype)
        arr = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    img = Image.fromarray(arr)
    if img.mode == "I" and container == "PNG":
        container = "TIFF"  # Pillow deprecates writing "I" as PNG
    source: object = img
    if container != "PIL":
        try:
            source = encode(img, container)
        except (OSError, ValueError, KeyError):
            source = img  # the format cannot hold this mode: the PIL path then
    try:
        x, seen = load_for_model(source, SPEC)
    except ImageError:
        return
    assert x.shape == (3, SPEC.size, SPEC.size) and x.dtype == torch.uint8
    assert seen.size == (SPEC.size, SPEC.size) and seen.mode == "RGB"
    assert torch.isfinite(normalize(x, SPEC)).all()


@settings(max_examples=40, deadline=None)
@given(blob=st.binary(min_size=0, max_size=400), prefix=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"RIFF"]))
def test_load_for_model_random_bytes_only_image_error(blob: bytes, prefix: bytes) -> None:
    try:
        x, _ = load_for_model(prefix + blob, SPEC)
    except ImageError:
        return
    assert x.shape == (3, SPEC.size, SPEC.size)
