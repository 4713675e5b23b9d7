"""Tests for fishcat.images: every image is generated in tmp_path or in memory."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from fishcat.images import (
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    ImageError,
    image_digest,
    is_hidden,
    load_image,
)

ORIENTATION = 0x0112


# ---------------------------------------------------------------- helpers


def _noise(size: tuple[int, int], mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    nbytes = len(Image.new(mode, size).tobytes())
    return Image.frombytes(mode, size, rng.bytes(nbytes))


def _asymmetric(size: tuple[int, int] = (40, 24)) -> Image.Image:
    """Upright test picture with no symmetry, so every flip/rotation is detectable."""
    w, h = size
    arr = np.zeros((h, w, 3), np.uint8)
    arr[..., 0] = np.arange(w, dtype=np.uint8)[None, :] * 5
    arr[..., 1] = np.arange(h, dtype=np.uint8)[:, None] * 9
    arr[: h // 3, : w // 4, 2] = 255  # top-left marker
    return Image.fromarray(arr)


def _encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _png_header_only(width: int, height: int, bit_depth: int, color_type: int = 0) -> bytes:
    """A PNG whose IHDR claims width x height but whose IDAT holds only the first rows.

    Building a real 30000x30000 PNG would take 100+ MB of zlib input; a loader that
    checks the header first never reads past it, and one that decodes would report
    "truncated" instead of "too large", so this also proves the order of checks.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    row = b"\x00" * (1 + (width * bit_depth + 7) // 8)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(row * 4))
        + _png_chunk(b"IEND", b"")
    )


def _pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img).astype(np.int16)


def _assert_rgb(img: Image.Image, size: tuple[int, int]) -> None:
    assert img.mode == "RGB"
    assert img.size == size


# ---------------------------------------------------------------- small API


def test_image_extensions_are_lowercase_suffixes() -> None:
    assert {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".jfif"} <= IMAGE_EXTENSIONS
    assert all(ext.startswith(".") and ext == ext.lower() for ext in IMAGE_EXTENSIONS)
    assert MAX_PIXELS == 64_000_000
    assert issubclass(ImageError, ValueError)


@pytest.mark.parametrize(
    ("path", "hidden"),
    [
        ("cats/tom.jpg", False),
        ("tom.jpg", False),
        (".DS_Store", True),
        ("cats/._tom.jpg", True),
        ("__MACOSX/cats/tom.jpg", True),
        ("cats/Thumbs.db", True),
        ("cats/thumbs.db", True),
        ("cats/desktop.ini", True),
        (".hidden/tom.jpg", True),
        ("../cats/tom.jpg", False),
        ("./cats/tom.jpg", False),
    ],
)
def test_is_hidden(path: str, hidden: bool) -> None:
    assert is_hidden(Path(path)) is hidden


def test_image_digest_is_sha256_of_bytes(tmp_path: Path) -> None:
    import hashlib

    data = bytes(range(256)) * 9000  # > 1 chunk
    path = _write(tmp_path, "a.bin", data)
    assert image_digest(path) == hashlib.sha256(data).hexdigest()
    assert image_digest(str(path)) == hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- transparency and modes


def test_rgba_screenshot_transparent_area_becomes_white(tmp_path: Path) -> None:
    arr = np.zeros((20, 30, 4), np.uint8)
    arr[:, :15] = (10, 200, 30, 255)  # opaque left half
    arr[:, 15:] = (255, 0, 0, 0)  # fully transparent red: must NOT show as red
    arr[0, 0] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    path = _write(tmp_path, "screenshot.png", _encode(Image.fromarray(arr), "PNG"))

    out = load_image(path)
    _assert_rgb(out, (30, 20))
    px = np.asarray(out)
    assert (px[:, 15:] == 255).all()
    assert (px[1:, :15] == (10, 200, 30)).all()
    assert abs(int(px[0, 0, 0]) - 127) <= 1


def test_la_transparent_is_white() -> None:
    img = Image.new("LA", (4, 4), (0, 0))
    img.putpixel((0, 0), (50, 255))
    px = np.asarray(load_image(_encode(img, "PNG")))
    assert tuple(px[0, 0]) == (50, 50, 50)
    assert (px[1:] == 255).all()


def test_one_bit_image() -> None:
    img = Image.new("1", (9, 5), 0)
    img.putpixel((3, 2), 1)
    out = load_image(_encode(img, "PNG"))
    _assert_rgb(out, (9, 5))
    px = np.asarray(out)
    assert tuple(px[2, 3]) == (255, 255, 255)
    assert tuple(px[0, 0]) == (0, 0, 0)


def _palette_image() -> Image.Image:
    img = Image.new("P", (4, 2), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    img.putpixel((0, 0), 1)  # blue at (0, 0), red elsewhere
    return img


@pytest.mark.parametrize("via_file", [False, True])
def test_palette_with_transparency_index(via_file: bool) -> None:
    img = _palette_image()
    img.info["transparency"] = 0  # GIF-style: palette index 0 (red) is transparent
    src = load_image(_encode(img, "PNG", transparency=0)) if via_file else load_image(img)
    px = np.asarray(src)
    assert tuple(px[0, 0]) == (0, 0, 255)
    assert (px[1:] == 255).all() and tuple(px[0, 1]) == (255, 255, 255)


@pytest.mark.parametrize("via_file", [False, True])
def test_palette_with_rgba_palette(via_file: bool) -> None:
    img = Image.new("P", (4, 2), 0)
    # red fully transparent, blue opaque, green half transparent
    img.putpalette(bytes([255, 0, 0, 0, 0, 0, 255, 255, 0, 255, 0, 128]), rawmode="RGBA")
    img.putpixel((0, 0), 1)
    img.putpixel((1, 0), 2)
    assert img.palette is not None and img.palette.mode == "RGBA"
    out = load_image(_encode(img, "PNG")) if via_file else load_image(img)
    px = np.asarray(out)
    assert tuple(px[0, 0]) == (0, 0, 255)
    assert abs(int(px[0, 1, 0]) - 127) <= 1 and px[0, 1, 1] == 255
    assert (px[1] == 255).all()


def test_pa_mode_pil_input() -> None:
    img = Image.new("PA", (3, 3), (1, 0))
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    img.putpixel((0, 0), (1, 255))
    px = np.asarray(load_image(img))
    assert tuple(px[0, 0]) == (0, 255, 0)
    assert tuple(px[2, 2]) == (255, 255, 255)


def test_cmyk_jpeg(tmp_path: Path) -> None:
    img = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    path = _write(tmp_path, "print.jpg", _encode(img, "JPEG", quality=95))
    out = load_image(path)
    _assert_rgb(out, (16, 16))
    r, g, b = (int(v) for v in np.asarray(out)[8, 8])
    assert r > 230 and g < 30 and b < 30


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I"])
def test_16bit_grey_scaled_not_clipped(mode: str) -> None:
    img = Image.new(mode, (4, 4), 32768)
    img.putpixel((0, 0), 65535)
    img.putpixel((1, 0), 0)
    px = np.asarray(load_image(img))
    assert tuple(px[2, 2]) == (128, 128, 128)
    assert tuple(px[0, 0]) == (255, 255, 255)
    assert tuple(px[0, 1]) == (0, 0, 0)


def test_16bit_png_file_mid_grey() -> None:
    img = Image.new("I;16", (8, 8), 32768)
    data = _encode(img, "PNG")
    with Image.open(io.BytesIO(data)) as reread:
        assert reread.mode in ("I;16", "I")  # sanity: the file really is 16-bit
    assert abs(int(np.asarray(load_image(data))[0, 0, 0]) - 128) <= 1


def test_float_image_ranges() -> None:
    unit = Image.new("F", (2, 1), 0.5)
    assert np.asarray(load_image(unit))[0, 0, 0] == 128
    wide = Image.new("F", (2, 1), 100.0)
    wide.putpixel((1, 0), 1e9)
    px = np.asarray(load_image(wide))
    assert px[0, 0, 0] == 100 and px[0, 1, 0] == 255
    weird = Image.fromarray(np.array([[np.nan, np.inf, -np.inf, -5.0]], np.float32))
    assert np.asarray(load_image(weird))[0, :, 0].tolist() == [0, 255, 0, 0]


@pytest.mark.parametrize("mode", ["YCbCr", "LAB", "HSV", "RGBX", "RGBa", "La", "L"])
def test_other_modes_become_rgb(mode: str) -> None:
    img = _noise((5, 3), mode)
    _assert_rgb(load_image(img), (5, 3))


def test_pil_rgba_input_not_modified() -> None:
    img = Image.new("RGBA", (6, 6), (0, 0, 0, 0))
    img.putpixel((1, 1), (9, 8, 7, 255))
    out = load_image(img)
    assert out is not img
    assert img.mode == "RGBA" and img.getpixel((0, 0)) == (0, 0, 0, 0)
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 1)) == (9, 8, 7)


def test_returns_new_image_for_rgb_input() -> None:
    img = Image.new("RGB", (3, 3), (1, 2, 3))
    out = load_image(img)
    assert out is not img
    out.putpixel((0, 0), (9, 9, 9))
    assert img.getpixel((0, 0)) == (1, 2, 3)


# ---------------------------------------------------------------- EXIF orientation


@pytest.mark.parametrize(
    ("orientation", "stored_from_upright"),
    [(6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270), (3, Image.Transpose.ROTATE_180)],
)
def test_exif_orientation_gives_upright_pixels(
    tmp_path: Path, orientation: int, stored_from_upright: Image.Transpose
) -> None:
    upright = _asymmetric()
    stored = upright.transpose(stored_from_upright)
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    path = _write(tmp_path, f"o{orientation}.png", _encode(stored, "PNG", exif=exif))

    out = load_image(path)
    assert out.size == upright.size
    assert np.array_equal(np.asarray(out), np.asarray(upright))
    # The orientation is baked in: no metadata left that could rotate it again.
    assert ORIENTATION not in out.getexif()


def test_exif_orientation_tiff(tmp_path: Path) -> None:
    upright = _asymmetric()
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    path = _write(
        tmp_path, "o6.tif", _encode(upright.transpose(Image.Transpose.ROTATE_90), "TIFF", exif=exif)
    )
    assert np.array_equal(np.asarray(load_image(path)), np.asarray(upright))


# ---------------------------------------------------------------- animation


def test_animated_gif_200_frames_first_frame(tmp_path: Path) -> None:
    colors = [(255, 0, 0)] + [(0, (i * 37) % 256, 255 - i % 256) for i in range(1, 200)]
    frames = [Image.new("RGB", (24, 16), c) for c in colors]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=20, loop=0)
    with Image.open(path) as check:
        assert check.n_frames == 200

    start = time.perf_counter()
    out = load_image(path)
    elapsed = time.perf_counter() - start
    _assert_rgb(out, (24, 16))
    assert out.getpixel((5, 5)) == (255, 0, 0)
    assert elapsed < 0.5


def test_animated_webp_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    data = _encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    assert load_image(data).getpixel((8, 8)) == (255, 0, 0)


def test_apng_first_frame() -> None:
    frames = [Image.new("RGBA", (8, 8), c) for c in [(255, 0, 0, 255), (0, 255, 0, 255)]]
    data = _encode(frames[0], "PNG", save_all=True, append_images=frames[1:])
    assert load_image(data).getpixel((1, 1)) == (255, 0, 0)


# ---------------------------------------------------------------- broken files


def test_truncated_jpeg(tmp_path: Path) -> None:
    data = _encode(_noise((64, 64)), "JPEG")
    path = _write(tmp_path, "half.jpg", data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"^half\.jpg: corrupt or truncated"):
        load_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("cut", [0.5, 0.9, -20])
def test_truncated_png(tmp_path: Path, cut: float) -> None:
    data = _encode(_noise((64, 64)), "PNG")
    end = int(len(data) * cut) if cut > 0 else len(data) + int(cut)
    path = _write(tmp_path, "cut.png", data[:end])
    with pytest.raises(ImageError, match=r"^cut\.png: corrupt or truncated"):
        load_image(path)


@pytest.mark.parametrize("chunk", [b"IHDR", b"IDAT"])
def test_png_bad_crc(tmp_path: Path, chunk: bytes) -> None:
    data = bytearray(_encode(_noise((32, 32)), "PNG"))
    pos = data.find(chunk)
    length = struct.unpack(">I", data[pos - 4 : pos])[0]
    data[pos + 4 + length] ^= 0xFF  # flip the first CRC byte only; the pixels are intact
    path = _write(tmp_path, "crc.png", bytes(data))
    with pytest.raises(ImageError, match=r"^crc\.png: corrupt"):
        load_image(path)


def test_png_bad_crc_in_ancillary_chunk_is_tolerated() -> None:
    png = _encode(Image.new("RGB", (4, 4), (1, 2, 3)), "PNG")
    bad_text = struct.pack(">I", 3) + b"tEXt" + b"a\x00b" + b"\x00\x00\x00\x00"
    damaged = png[:-12] + bad_text + png[-12:]  # before IEND, after the pixel data
    assert load_image(damaged).getpixel((0, 0)) == (1, 2, 3)


def test_png_corrupt_pixel_data(tmp_path: Path) -> None:
    data = bytearray(_encode(_noise((32, 32)), "PNG"))
    pos = data.find(b"IDAT")
    data[pos + 30] ^= 0xFF
    with pytest.raises(ImageError, match="corrupt"):
        load_image(_write(tmp_path, "bits.png", bytes(data)))


@pytest.mark.parametrize(
    "content",
    [
        b"just some text\n",
        b"<!DOCTYPE html><html><body>hi</body></html>",
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
        b"",
        b"\x89",
        b"x",
    ],
)
def test_not_an_image(tmp_path: Path, content: bytes) -> None:
    path = _write(tmp_path, "renamed.png", content)
    with pytest.raises(ImageError, match=r"^renamed\.png: not an image"):
        load_image(path)


@pytest.mark.parametrize(("brand", "kind"), [(b"heic", "HEIC"), (b"avis", "AVIF")])
def test_heic_avif_header_message(tmp_path: Path, brand: bytes, kind: str) -> None:
    # Only the file-type box: a real HEIC/AVIF cannot be generated without extra codecs.
    data = struct.pack(">I", 24) + b"ftyp" + brand + b"\x00\x00\x00\x00" + b"mif1" + brand
    path = _write(tmp_path, "IMG_0001.HEIC", data)
    with pytest.raises(ImageError, match=rf"^IMG_0001\.HEIC: unsupported format {kind}: export as JPEG or PNG"):
        load_image(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"^nope\.png: file not found"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageError, match=r"^dir\.png:"):
        load_image(tmp_path / "dir.png")


# ---------------------------------------------------------------- size limits


@pytest.mark.parametrize(
    ("width", "height", "bit_depth", "expect"),
    [
        (9000, 8000, 8, "9000x8000 pixels"),  # above MAX_PIXELS, below Pillow's warning
        (10000, 10000, 8, "100000000 pixels"),  # Pillow's warning range, turned into ImageError
        (30000, 30000, 1, "900000000 pixels"),  # Pillow's own DecompressionBombError
    ],
)
def test_pixel_bomb_refused_from_header(
    tmp_path: Path, width: int, height: int, bit_depth: int, expect: str
) -> None:
    path = _write(tmp_path, "big.png", _png_header_only(width, height, bit_depth))
    assert path.stat().st_size < 10_000
    # Peak memory is measured in a fresh process by test_reliability_images.py::test_pixel_bomb_memory_stays_flat.
    with pytest.raises(ImageError, match=r"^big\.png: image too large") as info:
        load_image(path)
    assert expect in str(info.value) and str(MAX_PIXELS) in str(info.value)


def test_pixel_limit_for_pil_input() -> None:
    img = Image.new("1", (MAX_PIXELS // 1000 + 1, 1000))  # mode "1": ~64 MB, freed at once
    with pytest.raises(ImageError, match="too large"):
        load_image(img)
    del img


@pytest.fixture(scope="module")
def large_jpeg(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 4000x3000 photo-sized JPEG, plus the same pixels tagged orientation 6."""
    w, h = 4000, 3000
    gradient = (np.arange(w, dtype=np.uint16)[None, :] + np.arange(h, dtype=np.uint16)[:, None]) // 28
    arr = np.repeat(gradient.astype(np.uint8)[..., None], 3, axis=2)
    img = Image.fromarray(arr)
    folder = tmp_path_factory.mktemp("jpeg")
    plain = folder / "photo.jpg"
    img.save(plain, quality=70)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    rotated = folder / "photo_o6.jpg"
    img.save(rotated, quality=70, exif=exif)
    return plain, rotated


def test_jpeg_draft_with_min_size(large_jpeg: tuple[Path, Path]) -> None:
    plain, _ = large_jpeg
    out = load_image(plain, min_size=(64, 64))
    assert out.mode == "RGB"
    assert 64 <= out.width < 4000 and 64 <= out.height < 3000
    assert out.size == (500, 375)  # 1/8 scale, the smallest libjpeg offers


def test_jpeg_without_min_size_is_full_size(large_jpeg: tuple[Path, Path]) -> None:
    plain, _ = large_jpeg
    assert load_image(plain).size == (4000, 3000)


def test_jpeg_draft_respects_rotation(large_jpeg: tuple[Path, Path]) -> None:
    _, rotated = large_jpeg
    # Upright the photo is 3000 wide x 4000 high. A naive draft of the stored
    # 4000x3000 pixels to (1000, 64) would pick 1/4 scale -> 750 wide after rotation.
    out = load_image(rotated, min_size=(1000, 64))
    assert out.width >= 1000 and out.height >= 64
    assert out.height > out.width  # rotated upright
    assert out.size == (1500, 2000)


def test_mpo_phone_photo_draft() -> None:
    # Multi-picture JPEGs (many phones/cameras) open as MPO, a JPEG subclass.
    first = Image.new("RGB", (1600, 1200), (200, 10, 10))
    second = Image.new("RGB", (1600, 1200), (10, 200, 10))
    data = _encode(first, "MPO", save_all=True, append_images=[second])
    out = load_image(data, min_size=(100, 100))
    assert out.size == (200, 150)
    r, g, _ = out.getpixel((5, 5))
    assert r > 180 and g < 40


def test_min_size_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="min_size"):
        load_image(Image.new("RGB", (2, 2)), min_size=(0, 5))


# ---------------------------------------------------------------- shapes, names, sources


@pytest.mark.parametrize("size", [(1, 1), (1, 10000), (10000, 1)])
def test_extreme_shapes(tmp_path: Path, size: tuple[int, int]) -> None:
    path = _write(tmp_path, "thin.png", _encode(Image.new("RGB", size, (3, 4, 5)), "PNG"))
    out = load_image(path)
    _assert_rgb(out, size)
    assert out.getpixel((0, 0)) == (3, 4, 5)


def test_unicode_and_long_file_names(tmp_path: Path) -> None:
    data = _encode(Image.new("RGB", (3, 3), (1, 2, 3)), "PNG")
    for name in ["котик 🐟 猫.png", "a" * 240 + ".png"]:
        path = _write(tmp_path, name, data)
        assert load_image(path).getpixel((1, 1)) == (1, 2, 3)
        assert load_image(str(path)).getpixel((1, 1)) == (1, 2, 3)
    bad = _write(tmp_path, "рыба 🐟.png", b"not an image")
    with pytest.raises(ImageError, match="^рыба 🐟.png: not an image"):
        load_image(bad)


def test_bytes_and_file_object_sources(tmp_path: Path) -> None:
    img = _noise((7, 5))
    data = _encode(img, "PNG")
    expected = np.asarray(img)
    assert np.array_equal(np.asarray(load_image(data)), expected)
    assert np.array_equal(np.asarray(load_image(bytearray(data))), expected)
    assert np.array_equal(np.asarray(load_image(memoryview(data))), expected)
    assert np.array_equal(np.asarray(load_image(io.BytesIO(data))), expected)

    path = _write(tmp_path, "fo.png", data)
    with open(path, "rb") as fh:
        assert np.array_equal(np.asarray(load_image(fh)), expected)
        assert not fh.closed  # the caller's file stays theirs

    # A stream positioned after a prefix (e.g. an upload with a header) still works.
    stream = io.BytesIO(b"junk" + data)
    stream.read(4)
    assert np.array_equal(np.asarray(load_image(stream)), expected)


def test_error_names_for_non_path_sources(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"^image: not an image"):
        load_image(b"hello")
    with pytest.raises(ImageError, match=r"^image: not an image"):
        load_image(io.BytesIO(b"hello"))
    path = _write(tmp_path, "named.png", b"hello")
    with open(path, "rb") as fh, pytest.raises(ImageError, match=r"^named\.png: not an image"):
        load_image(fh)


def test_lazy_truncated_pil_input(tmp_path: Path) -> None:
    data = _encode(_noise((64, 64)), "JPEG")
    path = _write(tmp_path, "lazy.jpg", data[: len(data) // 2])
    with Image.open(path) as lazy, pytest.raises(ImageError, match=r"^lazy\.jpg: corrupt"):
        load_image(lazy)


def test_unsupported_source_type() -> None:
    with pytest.raises(TypeError):
        load_image(12345)  # type: ignore[arg-type]


def test_result_is_loaded_and_file_closed(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.png", _encode(_noise((8, 8)), "PNG"))
    out = load_image(path)
    path.unlink()  # would fail on Windows if the file were still open
    assert out.getpixel((0, 0)) is not None
    assert getattr(out, "fp", None) is None


# ---------------------------------------------------------------- property test

MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "I", "I;16", "F"]
CONTAINERS = ["PNG", "TIFF", "WEBP", "GIF", "BMP", "JPEG", "PIL"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mode=st.sampled_from(MODES),
    width=st.integers(1, 64),
    height=st.integers(1, 64),
    container=st.sampled_from(CONTAINERS),
    seed=st.integers(0, 2**32 - 1),
    transparency=st.booleans(),
)
def test_any_mode_loads_as_rgb(
    mode: str, width: int, height: int, container: str, seed: int, transparency: bool
) -> None:
    img = _noise((width, height), mode, seed)  # random bytes: any float incl. NaN/inf
    if mode in ("P", "PA"):
        img.putpalette(np.random.default_rng(seed + 1).bytes(768))
        if transparency and mode == "P":
            img.info["transparency"] = seed % 256

    if (mode, container) == ("I", "PNG"):
        container = "TIFF"  # Pillow deprecates writing "I" as PNG; 16-bit PNG is covered by "I;16"
    source: object = img
    if container != "PIL":
        try:
            source = _encode(img, container)
        except (OSError, ValueError, KeyError):
            source = img  # this format cannot store this mode: test the PIL path instead

    # The contract allows ImageError, but every input here is a valid image, so the
    # test is stricter: it must load.
    out = load_image(source)  # type: ignore[arg-type]
    _assert_rgb(out, (width, height))
    if mode == "RGB" and (source is img or container in ("PNG", "TIFF", "BMP")):
        assert np.array_equal(np.asarray(out), np.asarray(img))


@pytest.fixture(scope="module")
def encoded_samples() -> list[bytes]:
    samples = [
        _encode(_noise((20, 13), "RGBA", 1), "PNG"),
        _encode(_noise((20, 13), "I;16", 2), "PNG"),
        _encode(_noise((20, 13), "RGB", 3), "JPEG"),
        _encode(_noise((20, 13), "CMYK", 4), "JPEG"),
        _encode(_noise((20, 13), "P", 5), "GIF"),
        _encode(_noise((20, 13), "F", 6), "TIFF"),
        _encode(_noise((20, 13), "RGB", 7), "BMP"),
        _encode(_noise((20, 13), "RGB", 8), "WEBP"),
    ]
    return samples


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@pytest.mark.filterwarnings("ignore:Truncated File Read:UserWarning")  # Pillow TIFF metadata reader
@given(data=st.data())
def test_damaged_files_raise_only_image_error(encoded_samples: list[bytes], data: st.DataObject) -> None:
    blob = bytearray(data.draw(st.sampled_from(encoded_samples)))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 4))):
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    try:
        out = load_image(bytes(blob))
    except ImageError as exc:
        assert str(exc).startswith("image: ")
        return
    assert out.mode == "RGB"  # some damage is harmless (e.g. inside a JPEG's pixel data)
