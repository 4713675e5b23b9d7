"""Load untrusted image files (dropped screenshots, photos, training folders) as RGB.

Everything that is not a usable image ends as one exception type, ImageError.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
import zlib
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import ExifTags, Image, JpegImagePlugin, UnidentifiedImageError

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "ImageError",
    "ImageSource",
    "image_digest",
    "is_hidden",
    "load_image",
]

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, Image.Image]

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".jfif"}
)

# Checked against the header size before any pixel is decoded. Lower than Pillow's
# own MAX_IMAGE_PIXELS (~89M, warning only), so a bomb is refused instead of warned about.
MAX_PIXELS = 64_000_000

# Only these Pillow readers are tried. Pillow can open dozens of formats, some of which
# accept almost any prefix (TGA, XBM, ...) or run external programs (EPS -> Ghostscript);
# dropped files are untrusted, so only common photo/screenshot formats are allowed.
# HEIF is used only if a plugin such as pillow-heif has registered it.
_ALLOWED_FORMATS = ("JPEG", "MPO", "PNG", "GIF", "BMP", "WEBP", "TIFF", "AVIF", "HEIF")

# Signatures of formats we accept: if Pillow cannot parse a file that starts with one
# of these, the file is a damaged image rather than "not an image".
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)

# ISO-BMFF brands (bytes 8..12 after "ftyp") of HEIC/AVIF files, typical of iPhone photos.
_HEIF_BRANDS: dict[bytes, str] = {
    b"heic": "HEIC",
    b"heix": "HEIC",
    b"heim": "HEIC",
    b"heis": "HEIC",
    b"hevc": "HEIC",
    b"hevx": "HEIC",
    b"mif1": "HEIF",
    b"msf1": "HEIF",
    b"avif": "AVIF",
    b"avis": "AVIF",
}

_HIDDEN_NAMES = frozenset({"__macosx", "thumbs.db", "desktop.ini"})

_WHITE = (255, 255, 255)

# Same table as PIL.ImageOps.exif_transpose. It is applied to the final RGB image
# because converting (e.g. TIFF -> RGB) drops the EXIF the orientation came from.
_EXIF_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_CHUNK = 1 << 20


class ImageError(ValueError):
    """The input is not a usable image; the message names the file and the reason."""


def is_hidden(path: str | os.PathLike[str]) -> bool:
    """True if any component of a path (relative to the scanned folder) is junk.

    Junk: dot files (".DS_Store", macOS "._x.jpg" resource forks), "__MACOSX",
    "Thumbs.db" and "desktop.ini". Pass paths relative to the folder being scanned,
    otherwise a parent such as "~/.local" would mark everything hidden.
    """
    for part in Path(path).parts:
        if part in (".", ".."):
            continue
        if part.startswith(".") or part.casefold() in _HIDDEN_NAMES:
            return True
    return False


def image_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file's bytes, read in chunks so memory stays flat."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def load_image(
    source: ImageSource, *, min_size: tuple[int, int] | None = None
) -> Image.Image:
    """Decode `source` into a new, fully loaded 8-bit RGB image, upright per EXIF.

    `source` is a path (str/PathLike), bytes, a binary file object or a PIL image
    (a PIL image is never modified, but it is loaded if lazy; its current frame is used).
    For files, animated images give their first frame.

    Transparent pixels are blended onto white. 16-bit and 32-bit integer greyscale
    ("I;16*", "I") are clipped to 0..65535 and divided by 257. Float ("F") images are
    treated as 0..1 if their largest finite value is <= 1 (scaled by 255), else as
    0..255; both are clipped, NaN and -inf become 0 and +inf 255.

    `min_size=(w, h)` lets JPEG files decode at a reduced DCT scale (1/2, 1/4, 1/8) as
    long as the upright result stays at least w x h; other formats and PIL inputs are
    returned at full size. Callers still resize; this only skips decoding work.

    Raises ImageError for anything that is not a usable image (including missing or
    unreadable files); the message starts with the file name.
    """
    if min_size is not None:
        if len(min_size) != 2 or any(int(v) < 1 for v in min_size):
            raise ValueError(f"min_size must be two positive ints, got {min_size!r}")
        min_size = (int(min_size[0]), int(min_size[1]))

    if isinstance(source, Image.Image):
        return _load_pil(source)

    if isinstance(source, (str, os.PathLike)):
        name = Path(source).name or str(source)
        try:
            fh = open(source, "rb")
        except FileNotFoundError as exc:
            raise ImageError(f"{name}: file not found") from exc
        except IsADirectoryError as exc:
            raise ImageError(f"{name}: is a folder, not an image file") from exc
        except OSError as exc:
            raise ImageError(f"{name}: cannot read file ({exc.strerror or exc})") from exc
        with fh:
            return _load_stream(fh, name, min_size)

    if isinstance(source, (bytes, bytearray, memoryview)):
        return _load_stream(io.BytesIO(source), "image", min_size)

    if hasattr(source, "read"):
        return _load_stream(_rewound(source), _stream_name(source), min_size)

    raise TypeError(f"cannot load an image from {type(source).__name__}")


def _display_name(raw: object) -> str:
    # File objects from os.fdopen have an int name; in-memory data has none.
    if isinstance(raw, (str, os.PathLike)) and str(raw):
        return Path(raw).name or "image"
    return "image"


def _stream_name(fh: object) -> str:
    return _display_name(getattr(fh, "name", None))


def _rewound(fh: BinaryIO) -> BinaryIO:
    """Return a seekable stream whose image data starts at offset 0.

    Pillow seeks to absolute offset 0 while identifying a file, so a stream that is
    not seekable, or is positioned past its start, is copied into memory first.
    """
    try:
        if fh.seekable() and fh.tell() == 0:
            return fh
    except (AttributeError, OSError, ValueError):
        pass
    try:
        return io.BytesIO(fh.read())
    except OSError as exc:
        raise ImageError(f"{_stream_name(fh)}: cannot read file ({exc})") from exc


def _load_stream(fh: BinaryIO, name: str, min_size: tuple[int, int] | None) -> Image.Image:
    try:
        head = fh.read(32)
        fh.seek(0)
    except OSError as exc:
        raise ImageError(f"{name}: cannot read file ({exc})") from exc
    if not head:
        raise ImageError(f"{name}: not an image or unsupported format (empty file)")

    try:
        # A DecompressionBombWarning would otherwise just be printed; as an error it
        # aborts before decoding. catch_warnings is process-global: if threads race,
        # at worst this "error" filter leaks, which only makes Pillow stricter.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(fh, formats=_open_formats())
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_large(name, None, exc) from exc
    except UnidentifiedImageError as exc:
        raise _unidentified(name, head) from exc
    except Exception as exc:  # noqa: BLE001 - Pillow's parsers raise many types on bad headers
        raise ImageError(f"{name}: corrupt or truncated image ({_describe(exc)})") from exc

    with img:
        _check_size(name, img.size)
        try:
            # Animated GIF/WebP/APNG: only the first frame is decoded; nothing here
            # asks for n_frames, so time does not grow with the frame count.
            img.seek(0)
            if min_size is not None and isinstance(img, JpegImagePlugin.JpegImageFile):
                img.draft("RGB", _draft_request(min_size, _orientation(img)))
            img.load()
            if img.format == "PNG":
                _check_png_chunks(fh, name)
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _too_large(name, img.size, exc) from exc
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - decoders raise OSError, SyntaxError, EOFError, zlib/struct errors...
            raise ImageError(f"{name}: corrupt or truncated image ({_describe(exc)})") from exc
        return _finish(img, _orientation(img), name)


def _check_png_chunks(fh: BinaryIO, name: str) -> None:
    """Verify the CRC of every critical PNG chunk and that no chunk is cut short.

    Pillow skips the CRC of image-data chunks and stops reading once it has all
    rows, so a damaged or cut-off file can still "load"; libpng rejects such files,
    and so do we. Like libpng, a bad CRC in an ancillary chunk (text, metadata) is
    tolerated: the pixels are intact. Costs one extra sequential read of the file.
    """
    fh.seek(8)
    while True:
        header = fh.read(8)
        if not header:
            # Ending cleanly on a chunk boundary without IEND: the pixels were complete.
            return
        if len(header) < 8:
            raise ImageError(f"{name}: corrupt or truncated image (PNG cut off in chunk header)")
        length = int.from_bytes(header[:4], "big")
        tag = header[4:]
        if length > 0x7FFFFFFF:
            raise ImageError(f"{name}: corrupt or truncated image (bad PNG chunk length)")
        crc = zlib.crc32(tag)
        remaining = length
        while remaining:
            data = fh.read(min(remaining, _CHUNK))
            if not data:
                raise ImageError(f"{name}: corrupt or truncated image (PNG cut off in {_tag(tag)} chunk)")
            crc = zlib.crc32(data, crc)
            remaining -= len(data)
        stored = fh.read(4)
        if len(stored) < 4:
            raise ImageError(f"{name}: corrupt or truncated image (PNG cut off in {_tag(tag)} chunk)")
        critical = not tag[0] & 0x20  # PNG spec: lowercase first letter = ancillary
        if critical and int.from_bytes(stored, "big") != crc:
            raise ImageError(f"{name}: corrupt or truncated image (bad CRC in PNG {_tag(tag)} chunk)")
        if tag == b"IEND":
            return


def _tag(tag: bytes) -> str:
    return tag.decode("ascii", "replace")


def _load_pil(img: Image.Image) -> Image.Image:
    name = _display_name(getattr(img, "filename", None))
    _check_size(name, img.size)
    try:
        # A lazily opened image (Image.open without load) still has to be decoded.
        img.load()
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - same decoder errors as for files
        raise ImageError(f"{name}: corrupt or truncated image ({_describe(exc)})") from exc
    return _finish(img, _orientation(img), name)


def _open_formats() -> tuple[str, ...]:
    # Image.open raises KeyError for a format that no plugin registered (e.g. HEIF
    # without pillow-heif), so only pass the registered ones. Checked per call so a
    # plugin registered after import is picked up.
    Image.init()
    return tuple(f for f in _ALLOWED_FORMATS if f in Image.OPEN)


def _unidentified(name: str, head: bytes) -> ImageError:
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        kind = _HEIF_BRANDS[head[8:12]]
        return ImageError(f"{name}: unsupported format {kind}: export as JPEG or PNG")
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return ImageError(f"{name}: corrupt or truncated image (unreadable {kind} header)")
    return ImageError(f"{name}: not an image or unsupported format")


def _check_size(name: str, size: tuple[int, int]) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(f"{name}: corrupt or truncated image (size {width}x{height})")
    if width * height > MAX_PIXELS:
        raise _too_large(name, size, None)


def _too_large(name: str, size: tuple[int, int] | None, exc: Exception | None) -> ImageError:
    if size is not None:
        detail = f"{size[0]}x{size[1]} pixels"
    else:
        # Pillow refused before we could see the size; its message has the pixel count.
        match = re.search(r"\((\d+) pixels\)", str(exc))
        detail = f"{match.group(1)} pixels" if match else "size unknown"
    return ImageError(f"{name}: image too large ({detail}, limit {MAX_PIXELS})")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # noqa: BLE001 - broken EXIF is common and must not reject the pixels
        return 1
    return value if isinstance(value, int) else 1


def _draft_request(min_size: tuple[int, int], orientation: int) -> tuple[int, int]:
    # draft() works on the stored (unrotated) pixels; orientations 5-8 turn the image
    # by 90 degrees, so the stored width becomes the upright height and vice versa.
    width, height = min_size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _finish(img: Image.Image, orientation: int, name: str) -> Image.Image:
    rgb = _to_rgb(img, name)
    method = _EXIF_TRANSPOSE.get(orientation)
    if method is not None:
        rgb = rgb.transpose(method)
    # The pixels are now upright plain RGB; dropping the metadata keeps a stale EXIF
    # orientation from rotating the image a second time downstream.
    rgb.info = {}
    return rgb


def _to_rgb(img: Image.Image, name: str) -> Image.Image:
    """New RGB image from any Pillow mode, transparency blended onto white."""
    if img.mode.startswith("I") or img.mode == "F":
        img = _high_depth_to_8bit(img)
    elif img.mode == "La":
        # Pillow cannot convert premultiplied "La" straight to RGB/RGBA.
        img = img.convert("LA")

    if img.has_transparency_data:
        # Covers RGBA/LA/PA/RGBa, palettes with alpha and "transparency" entries
        # (tRNS palettes, a transparent grey level or colour); convert() applies them.
        rgba = img if img.mode == "RGBA" else img.convert("RGBA")
        out = Image.new("RGB", rgba.size, _WHITE)
        # paste() with a mask blends alpha-weighted in C: out = rgb*a + white*(1-a).
        out.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
        return out

    try:
        return img.convert("RGB")
    except ValueError as exc:
        raise ImageError(f"{name}: unsupported pixel mode {img.mode}") from exc


def _high_depth_to_8bit(img: Image.Image) -> Image.Image:
    """Scale "I;16*", "I" and "F" to "L" (or "LA" if a transparent level is set).

    Pillow's own convert() clips these at 255, turning 16-bit mid-grey white.
    """
    raw = np.asarray(img)
    if img.mode == "F":
        values = raw.astype(np.float32, copy=False)
        finite = np.isfinite(values)
        peak = float(values[finite].max()) if finite.any() else 0.0
        scale = 255.0 if peak <= 1.0 else 1.0
        with np.errstate(invalid="ignore", over="ignore"):
            scaled = np.where(finite, values * scale, np.where(values > 0, 255.0, 0.0))
        grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    else:
        # uint32 is wide enough for 65535 + 128 and half the memory of int64.
        clipped = np.clip(raw, 0, 65535).astype(np.uint32)
        grey = ((clipped + 128) // 257).astype(np.uint8)
    out = Image.fromarray(np.ascontiguousarray(grey))

    transparent = img.info.get("transparency")
    if isinstance(transparent, (int, float)) and not isinstance(transparent, bool):
        alpha = np.where(raw == transparent, 0, 255).astype(np.uint8)
        out = Image.merge("LA", (out, Image.fromarray(alpha)))
    return out
