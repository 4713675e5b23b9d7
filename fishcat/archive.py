"""Safe extraction of user-uploaded .zip data sets.

The whole archive is validated before anything is written, and extraction is atomic.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, NamedTuple

from .images import is_hidden

__all__ = ["ArchiveError", "ArchiveLimits", "extract_zip", "find_dataset_root"]

_MIB = 1024**2
# Ratios are only meaningful for larger data: tiny files (or a few sparse ones)
# can legitimately compress very well, and they cannot fill a disk anyway.
_RATIO_MIN_BYTES = 1 * _MIB
_CHUNK = 1 * _MIB
_MAX_COMPONENT_BYTES = 200
# A suffix longer than this is not a real file extension; keeping it whole
# could leave almost nothing of the stem.
_MAX_SUFFIX_BYTES = 32
# "C:" anywhere would make pathlib/Windows restart the path at a drive root.
_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_CORRUPT_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,
)
try:  # lzma is an optional part of CPython builds
    import lzma

    _CORRUPT_ERRORS += (lzma.LZMAError,)
except ImportError:  # pragma: no cover
    pass
_SUPPORTED_METHODS = frozenset(
    {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
)


class ArchiveError(ValueError):
    """The uploaded archive is unsafe, malformed or could not be extracted."""


@dataclass(frozen=True)
class ArchiveLimits:
    """Upper bounds that an uploaded archive must respect."""

    max_files: int = 20_000
    max_total_bytes: int = 2 * 1024**3
    max_ratio: float = 200.0
    max_member_bytes: int = 200 * 1024**2


class _Member(NamedTuple):
    info: zipfile.ZipInfo
    parts: tuple[str, ...]  # sanitised path components relative to the output root
    is_dir: bool


def _truncate_component(part: str) -> str:
    """Cap a path component at _MAX_COMPONENT_BYTES of UTF-8, keeping its suffix."""
    encoded = part.encode("utf-8")
    if len(encoded) <= _MAX_COMPONENT_BYTES:
        return part
    dot = part.rfind(".")
    suffix = part[dot:] if dot > 0 else ""
    if len(suffix.encode("utf-8")) > _MAX_SUFFIX_BYTES:
        suffix = ""
    stem = part[: len(part) - len(suffix)] if suffix else part
    budget = _MAX_COMPONENT_BYTES - len(suffix.encode("utf-8"))
    # errors="ignore" drops a multi-byte character cut in half by the byte cap.
    stem = stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return stem + suffix


def _parse_name(info: zipfile.ZipInfo, archive: str) -> tuple[tuple[str, ...], bool]:
    """Validate an entry name; return its sanitised components and whether it is a folder."""
    # orig_filename keeps what zipfile would silently cut at a NUL byte.
    raw = info.orig_filename
    shown = repr(raw)
    if "\x00" in raw:
        raise ArchiveError(f"{archive}: entry {shown} has a NUL byte in its name")
    if not raw:
        raise ArchiveError(f"{archive}: an entry has an empty name")
    # Windows tools may write backslashes; treat them as separators so that
    # "..\\x" cannot slip past the ".." check and escape on Windows.
    norm = raw.replace("\\", "/")
    if norm.startswith("/"):
        raise ArchiveError(f"{archive}: entry {shown} has an absolute path")
    is_dir = norm.endswith("/")
    body = norm[:-1] if is_dir else norm
    parts = body.split("/")
    if any(_DRIVE_RE.match(p) for p in parts):
        raise ArchiveError(f"{archive}: entry {shown} has a drive letter in its path")
    if ".." in parts:
        raise ArchiveError(f"{archive}: entry {shown} contains '..'")
    parts = [p for p in parts if p != "."]
    if any(p == "" for p in parts):
        raise ArchiveError(f"{archive}: entry {shown} has an empty path component")
    if not parts and not is_dir:
        raise ArchiveError(f"{archive}: entry {shown} has no file name")
    return tuple(_truncate_component(p) for p in parts), is_dir


def _validate(zf: zipfile.ZipFile, archive: str, limits: ArchiveLimits) -> list[_Member]:
    """Check every entry against the limits; return the members worth extracting."""
    infos = zf.infolist()
    if len(infos) > limits.max_files:
        raise ArchiveError(
            f"{archive}: has {len(infos)} entries, more than the limit of {limits.max_files}"
        )
    members: list[_Member] = []
    total = 0
    total_compressed = 0
    for info in infos:
        shown = repr(info.orig_filename)
        # Names are checked for every entry, junk included: a malicious name is
        # a sign the whole upload is hostile.
        parts, is_dir = _parse_name(info, archive)
        if info.flag_bits & 0x1:
            raise ArchiveError(f"{archive}: entry {shown} is encrypted")
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFDIR:
            is_dir = True
        elif kind not in (0, stat.S_IFREG):
            what = "a symlink" if kind == stat.S_IFLNK else "not a regular file"
            raise ArchiveError(f"{archive}: entry {shown} is {what}")
        if is_dir and info.file_size > 0:
            raise ArchiveError(f"{archive}: folder entry {shown} carries data")
        if info.compress_type not in _SUPPORTED_METHODS:
            raise ArchiveError(
                f"{archive}: entry {shown} uses unsupported compression method "
                f"{info.compress_type}"
            )
        if info.file_size > limits.max_member_bytes:
            raise ArchiveError(
                f"{archive}: entry {shown} is {info.file_size} bytes, more than the "
                f"limit of {limits.max_member_bytes}"
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _RATIO_MIN_BYTES and ratio > limits.max_ratio:
            raise ArchiveError(
                f"{archive}: entry {shown} has a compression ratio of {ratio:.0f}, "
                f"more than the limit of {limits.max_ratio:g} (zip bomb?)"
            )
        total += info.file_size
        total_compressed += info.compress_size
        if total > limits.max_total_bytes:
            raise ArchiveError(
                f"{archive}: unpacks to more than the limit of {limits.max_total_bytes} bytes"
            )
        if parts and is_hidden(PurePosixPath(*parts)):
            continue
        if parts:
            members.append(_Member(info, parts, is_dir))
    ratio = total / max(total_compressed, 1)
    if total > _RATIO_MIN_BYTES and ratio > limits.max_ratio:
        raise ArchiveError(
            f"{archive}: has an overall compression ratio of {ratio:.0f}, more than "
            f"the limit of {limits.max_ratio:g} (zip bomb?)"
        )
    _check_collisions(members, archive)
    return members


def _check_collisions(members: list[_Member], archive: str) -> None:
    """Refuse duplicate paths and file/folder clashes instead of silently overwriting."""
    files: set[tuple[str, ...]] = set()
    dirs: set[tuple[str, ...]] = set()
    for m in members:
        if m.is_dir:
            dirs.add(m.parts)
        else:
            if m.parts in files:
                raise ArchiveError(f"{archive}: file {'/'.join(m.parts)!r} appears twice")
            files.add(m.parts)
        dirs.update(m.parts[:i] for i in range(1, len(m.parts)))
    clash = files & dirs
    if clash:
        name = "/".join(sorted(clash)[0])
        raise ArchiveError(f"{archive}: {name!r} is both a file and a folder")


def _copy_member(
    src: IO[bytes], dst: IO[bytes], declared: int, budget: int, archive: str, shown: str
) -> int:
    """Stream one member, refusing data beyond its declared size or the total budget."""
    written = 0
    while True:
        # Read one byte past the declared size at most, which is enough to
        # prove a header lies without decompressing the rest of a bomb.
        chunk = src.read(min(_CHUNK, declared - written + 1))
        if not chunk:
            return written
        written += len(chunk)
        if written > declared:
            raise ArchiveError(
                f"{archive}: entry {shown} holds more data than its declared {declared} bytes"
            )
        if written > budget:
            raise ArchiveError(f"{archive}: unpacks to more than the allowed total size")
        dst.write(chunk)


def _extract_members(
    zf: zipfile.ZipFile, members: list[_Member], root: Path, archive: str, limits: ArchiveLimits
) -> None:
    root_resolved = root.resolve()
    budget = limits.max_total_bytes
    for m in members:
        target = root.joinpath(*m.parts)
        # Defence in depth: the name checks should already make escaping impossible.
        if not target.resolve().is_relative_to(root_resolved):
            raise ArchiveError(
                f"{archive}: entry {m.info.orig_filename!r} would be written outside the folder"
            )
        if m.is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        # "xb" never overwrites or follows something already at the target.
        with zf.open(m.info) as src, open(target, "xb") as dst:
            budget -= _copy_member(
                src, dst, m.info.file_size, budget, archive, repr(m.info.orig_filename)
            )


def extract_zip(
    zip_path: str | Path, dest_dir: str | Path, limits: ArchiveLimits = ArchiveLimits()
) -> Path:
    """Validate and extract a user-uploaded zip into the new folder ``dest_dir``.

    Raises ArchiveError, leaving nothing behind, if the archive is unsafe,
    malformed, over ``limits``, or cannot be written. Junk such as ``__MACOSX/``,
    hidden names, ``Thumbs.db`` and ``desktop.ini`` is skipped. Returns ``dest_dir``.
    """
    zip_path = Path(zip_path)
    dest = Path(dest_dir)
    archive = zip_path.name
    if dest.exists() or dest.is_symlink():
        raise ArchiveError(f"{archive}: destination {str(dest)!r} already exists")
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as e:
        raise ArchiveError(f"{archive}: is not a valid zip file ({e})") from e
    except OSError as e:
        raise ArchiveError(f"{archive}: could not be read: {e.strerror or e}") from e
    with zf:
        try:
            members = _validate(zf, archive, limits)
        except zipfile.BadZipFile as e:
            raise ArchiveError(f"{archive}: is not a valid zip file ({e})") from e

        # Extract next to dest so the final rename stays on one file system and
        # is atomic: dest_dir either appears complete or not at all.
        tmp = dest.parent / f".tmp-{dest.name}-{secrets.token_hex(6)}"
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
            _extract_members(zf, members, tmp, archive, limits)
            if dest.exists() or dest.is_symlink():
                raise ArchiveError(f"{archive}: destination {str(dest)!r} already exists")
            os.replace(tmp, dest)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(e, ArchiveError):
                raise
            if isinstance(e, OSError):
                raise ArchiveError(f"{archive}: could not extract: {e.strerror or e}") from e
            # Corrupt data shows up only while decompressing (bad CRC, truncated
            # stream, damaged deflate data, method unavailable in this Python).
            if isinstance(e, _CORRUPT_ERRORS):
                raise ArchiveError(f"{archive}: is corrupt: {e}") from e
            raise
    return dest


def find_dataset_root(folder: Path) -> Path:
    """Descend through lone sub-folders to where the data set actually starts.

    Stops at a folder with more than one visible entry, one holding ``train``,
    or one whose only entry is not a folder. Hidden and junk names are ignored.
    """
    current = Path(folder)
    while True:
        visible = [p for p in current.iterdir() if not is_hidden(p.name)]
        if any(p.name.casefold() == "train" for p in visible) or len(visible) != 1:
            return current
        only = visible[0]
        # Never follow symlinks: they could point anywhere (or loop).
        if only.is_symlink() or not only.is_dir():
            return current
        current = only
