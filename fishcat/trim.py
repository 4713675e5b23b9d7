"""Find the main picture (photo) inside a screenshot and crop away window chrome, text and flat borders.

Pure numpy + Pillow; the analysis runs on sampled pixels, so it stays fast on large screenshots.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]  # left, top, right, bottom; right/bottom exclusive

# Longest side of the sampled analysis grid; keeps the cost independent of the screenshot size.
_GRID_SIDE = 256
# Cell size in grid samples; picture-ness is judged per cell.
_CELL = 6
# A cell is "picture" when its most common exact colour covers less than this share of it (UI is
# flat fills plus thin strokes, so one exact background colour dominates; photos carry noise)...
_CELL_MODE = 0.25
# ...and less than this share of it lies within _UI_TOL of a background colour: JPEG ringing around
# text breaks exact colours, but the background stays close to its true colour.
_CELL_UI = 0.5
_UI_TOL = 12
# Background colours: among the _UI_COLOURS most frequent exact colours, those covering at least
# _UI_SHARE of the samples, whose samples have a same-coloured right neighbour at least _UI_SOLID
# of the time (solid fills, unlike the speckled repeated values in smooth parts of a JPEG photo),
# and which reach the screenshot edge or cover at least _UI_LARGE of it.
_UI_COLOURS = 8
_UI_SHARE = 0.01
_UI_SOLID = 0.6
_UI_LARGE = 0.1
# A picture cell also needs _ROUGH_SHARE of its samples with a second difference above _SMOOTH,
# which rules out CSS gradients (banners, ads) and blurry upscaled icons.
_SMOOTH = 3
_ROUGH_SHARE = 0.25
# Text-like cell: one colour or the background covers >= _TEXT_MODE of it, and at least _TEXT_INK
# of it contrasts with its most common colour by more than _TEXT_CONTRAST in some channel.
_TEXT_MODE = 0.5
_TEXT_INK = 0.03
_TEXT_CONTRAST = 80
# Cropping needs at least this many text-like cells outside the picture (or a letterbox frame).
_MIN_TEXT_CELLS = 6
# Picture pieces at most _MERGE_GAP cells apart that share _MERGE_OVERLAP of their extent are merged.
_MERGE_GAP = 2
_MERGE_OVERLAP = 0.6
# A line next to the picture is "flat" (part of the surrounding gap or border) when _FLAT_SHARE of
# it is within _EXACT_TOL of its mean colour. For lossy screenshots the tolerance is _FLAT_TOL, and
# a line also counts when _LOSSY_SHARE of it is within _LOSSY_TOL and its mean is a background colour.
_FLAT_SHARE = 0.95
_EXACT_TOL = 1
_FLAT_TOL = 3
_LOSSY_TOL = 10
_LOSSY_SHARE = 0.9
# A screenshot counts as lossy when the samples within _LOSSY_NOISE of a background colour, but
# not exactly on it, outnumber _LOSSY_PIXELS times the exact ones.
_LOSSY_NOISE = 3
_LOSSY_PIXELS = 0.02
# Flatness of a line is judged on at most about this many pixels along it.
_LINE_SAMPLES = 256
# Conservative limits: outside them the input is returned unchanged.
_MAX_AREA_FRACTION = 0.9
_MIN_AREA_FRACTION = 0.02
_MIN_SIDE = 32


@dataclass(frozen=True)
class _Grid:
    """What the coarse pass learned about the screenshot."""

    box: Box  # picture cells, in cells, end exclusive
    step: int  # cell size in input pixels
    text: np.ndarray  # per cell: looks like text or icons on a flat background
    colours: np.ndarray  # background colours, shape (k, 3)
    lossy: bool  # whether the screenshot looks JPEG-compressed


def _mode(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Most common value of each row of ``samples`` (n, k) and the share of the row it covers."""
    n, k = samples.shape
    ordered = np.sort(samples, axis=1)
    if k == 1:
        return ordered[:, 0], np.ones(n)
    same = ordered[:, 1:] == ordered[:, :-1]
    # In a sorted row the longest run of equal values is the most common value.
    idx = np.arange(1, k)
    run = idx - np.maximum.accumulate(np.where(same, 0, idx), axis=1)
    end = run.argmax(axis=1)
    return ordered[np.arange(n), end + 1], (run[np.arange(n), end] + 1) / k


def _unpack(packed: np.ndarray) -> np.ndarray:
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=-1).astype(np.int32)


def _background_colours(packed: np.ndarray) -> np.ndarray:
    """The screenshot's background colours as an (k, 3) int32 array (see _UI_SOLID)."""
    values, counts = np.unique(packed, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:_UI_COLOURS]
    keep = []
    for value, count in zip(values[order], counts[order]):
        if count < _UI_SHARE * packed.size:
            break
        mask = packed == value
        pairs = int(mask[:, :-1].sum())
        if not pairs or (mask[:, :-1] & mask[:, 1:]).sum() < _UI_SOLID * pairs:
            continue
        # Window and page backgrounds reach the screenshot edge or are huge; the flat fill of an
        # illustration (an emoji's yellow face) is a compact area inside.
        edge = mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()
        if edge or count >= _UI_LARGE * packed.size:
            keep.append(int(value))
    return _unpack(np.array(keep, dtype=np.int64)).reshape(-1, 3)


def _colour_distance(rgb: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Per pixel of ``rgb`` (..., 3): largest channel difference to the closest of ``colours``."""
    best = np.full(rgb.shape[:-1], 255, dtype=np.int16)
    for colour in colours.astype(np.int16):
        np.minimum(best, np.abs(rgb - colour).max(axis=-1), out=best)
    return best


def _union(a: Box, b: Box) -> Box:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def _components(mask: np.ndarray, weight: np.ndarray) -> list[tuple[float, Box]]:
    """4-connected components of ``mask`` as (total weight, bounding box in cells, end exclusive).

    Works on horizontal runs with a small union-find, so the Python loop is per run, not per cell.
    """
    rows, cols = mask.shape
    padded = np.zeros((rows, cols + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    change = np.diff(padded, axis=1)
    csum = np.concatenate([np.zeros((rows, 1)), np.cumsum(weight * mask, axis=1)], axis=1)
    parent: list[int] = []
    runs: list[tuple[int, int, int]] = []  # row, start, end (exclusive)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    previous: list[int] = []
    for y in range(rows):
        starts = np.nonzero(change[y] == 1)[0]
        ends = np.nonzero(change[y] == -1)[0]
        current = []
        for x0, x1 in zip(starts.tolist(), ends.tolist()):
            run = len(runs)
            runs.append((y, x0, x1))
            parent.append(run)
            for other in previous:
                _, p0, p1 = runs[other]
                if p0 < x1 and x0 < p1:  # overlapping columns: 4-connected
                    ra, rb = find(run), find(other)
                    if ra != rb:
                        parent[ra] = rb
            current.append(run)
        previous = current
    merged: dict[int, tuple[float, Box]] = {}
    for i, (y, x0, x1) in enumerate(runs):
        total = float(csum[y, x1] - csum[y, x0])
        root = find(i)
        weight_so_far, box = merged.get(root, (0.0, (x0, y, x1, y + 1)))
        merged[root] = (weight_so_far + total, _union(box, (x0, y, x1, y + 1)))
    return list(merged.values())


def _belongs(main: Box, other: Box) -> bool:
    """Whether ``other`` looks like another piece of the same rectangular picture as ``main``.

    A flat band inside a photo (deep shadow, blown-out sky) can split it into pieces; such pieces sit
    next to each other and share most of their extent across the gap, unlike a thumbnail or an ad
    placed beside the picture.
    """
    gap_x = max(main[0], other[0]) - min(main[2], other[2])
    gap_y = max(main[1], other[1]) - min(main[3], other[3])
    if gap_x <= 0 and gap_y <= 0:  # bounding boxes overlap
        return True
    if gap_y < 0 and gap_x <= _MERGE_GAP:
        overlap, extent = -gap_y, max(main[3] - main[1], other[3] - other[1])
    elif gap_x < 0 and gap_y <= _MERGE_GAP:
        overlap, extent = -gap_x, max(main[2] - main[0], other[2] - other[0])
    else:
        return False
    return overlap >= _MERGE_OVERLAP * extent


def _coarse(image: Image.Image) -> _Grid | None:
    """Locate the picture on a grid of cells; None when no cell looks like a picture."""
    w, h = image.size
    s = max(1, round(max(w, h) / _GRID_SIDE))
    cols, rows = w // s // _CELL, h // s // _CELL
    if rows < 1 or cols < 1:
        return None
    # Nearest-neighbour sampling (not averaging) keeps exact colours, which is what separates flat
    # UI from photos. Sample (i, j) is the pixel near (j * s, i * s).
    box = (0, 0, cols * _CELL * s, rows * _CELL * s)
    sampled = image.resize((cols * _CELL, rows * _CELL), Image.Resampling.NEAREST, box=box)
    g = np.asarray(sampled).astype(np.int16)
    g32 = g.astype(np.int32)
    packed = (g32[..., 0] << 16) | (g32[..., 1] << 8) | g32[..., 2]

    def per_cell(a: np.ndarray) -> np.ndarray:
        """(rows*C, cols*C, ...) -> (rows, cols, C*C, ...): the samples of each cell side by side."""
        tail = a.shape[2:]
        return a.reshape(rows, _CELL, cols, _CELL, *tail).swapaxes(1, 2).reshape(rows, cols, -1, *tail)

    mode_value, mode = _mode(per_cell(packed).reshape(rows * cols, -1))
    mode = mode.reshape(rows, cols)
    mode_rgb = _unpack(mode_value).reshape(rows, cols, 1, 3).astype(np.int16)
    ink = (np.abs(per_cell(g) - mode_rgb).max(axis=-1) > _TEXT_CONTRAST).mean(axis=-1)

    colours = _background_colours(packed)
    distance = _colour_distance(g, colours)
    ui = per_cell(distance <= _UI_TOL).mean(axis=-1)
    # Lossless screenshots draw backgrounds in exact colours; JPEG adds faint noise around every edge.
    exact = int((distance == 0).sum())
    lossy = exact > 0 and int((distance <= _LOSSY_NOISE).sum()) - exact > _LOSSY_PIXELS * exact
    # Text and icons: thin high-contrast marks on a cell that is mostly one background colour.
    text = ((mode >= _TEXT_MODE) | (ui >= _TEXT_MODE)) & (ink >= _TEXT_INK)

    # CSS gradients (banners, ads, buttons) have no repeated colours either, but change perfectly
    # smoothly: their second differences stay tiny, where a photo's noise and texture do not.
    d2x = np.abs(g[:, 2:] - 2 * g[:, 1:-1] + g[:, :-2]).max(axis=-1)
    d2y = np.abs(g[2:] - 2 * g[1:-1] + g[:-2]).max(axis=-1)
    rough = np.zeros(g.shape[:2], dtype=bool)
    rough[:, 1:-1] |= d2x > _SMOOTH
    rough[1:-1] |= d2y > _SMOOTH
    textured = per_cell(rough).mean(axis=-1) >= _ROUGH_SHARE
    parts = _components((mode < _CELL_MODE) & (ui < _CELL_UI) & textured, 1.0 - mode)
    if not parts:
        return None
    parts.sort(key=lambda p: -p[0])
    box = parts[0][1]
    rest = [p[1] for p in parts[1:]]
    merged = True
    while merged:
        merged = False
        for other in rest:
            if _belongs(box, other):
                box = _union(box, other)
                rest.remove(other)
                merged = True
                break
    return _Grid(box, _CELL * s, text, colours, lossy)


def _band(image: Image.Image, lines: tuple[int, int], span: tuple[int, int], axis: int) -> np.ndarray:
    """Lines ``lines`` (rows for axis 0, columns for axis 1) over ``span`` as (lines, samples, 3) int16.

    A flat line is flat in any subsample of it, so long lines are thinned out to at most
    _LINE_SAMPLES pixels; a nearest-neighbour resize does that without copying the whole image.
    """
    lo, hi = lines
    a, b = span
    n = min(b - a, _LINE_SAMPLES)
    if axis == 0:
        band = image.resize((n, hi - lo), Image.Resampling.NEAREST, box=(a, lo, b, hi))
        return np.asarray(band).astype(np.int16)
    band = image.resize((hi - lo, n), Image.Resampling.NEAREST, box=(lo, a, hi, b))
    return np.asarray(band).astype(np.int16).swapaxes(0, 1)


def _flat_lines(band: np.ndarray, grid: _Grid) -> np.ndarray:
    """For each line of ``band`` (lines, samples, 3), whether it is one near-uniform colour."""
    n = band.shape[1]
    mean = (band.sum(axis=1, dtype=np.int32) // n).astype(np.int16)
    dev = np.abs(band - mean[:, None, :]).max(axis=-1)
    if not grid.lossy:
        # The lenient JPEG test would also accept smooth photo areas close to the page colour.
        return (dev <= _EXACT_TOL).sum(axis=1) >= _FLAT_SHARE * n
    flat = (dev <= _FLAT_TOL).sum(axis=1) >= _FLAT_SHARE * n
    lenient = (dev <= _LOSSY_TOL).sum(axis=1) >= _LOSSY_SHARE * n
    if len(grid.colours):
        flat |= lenient & (_colour_distance(mean, grid.colours) <= _UI_TOL)
    return flat


def _find_edge(
    image: Image.Image, inner: int, outer: int, span: tuple[int, int], axis: int, grid: _Grid
) -> int:
    """Walk from ``inner`` (inside the picture) towards ``outer`` and stop at the first flat line.

    ``axis`` 0 walks over rows (``span`` is a column range), 1 over columns (``span`` a row range).
    Returns the picture's edge: the first line past the flat one, or ``outer`` when none is flat.
    """
    a, b = span
    # Judge only the middle of each line: drop shadows and rounded corners make the ends of the gap
    # lines next to a picture vary, while their middle stays one flat colour.
    trim = (b - a) // 5
    a, b = a + trim, b - trim
    lo, hi = (outer, inner) if outer < inner else (inner + 1, outer)
    if hi <= lo or b <= a:
        return outer
    flat = np.nonzero(_flat_lines(_band(image, (lo, hi), (a, b), axis), grid))[0]
    if not flat.size:
        return outer
    # Walking towards smaller coordinates the nearest flat line is the last one, else the first.
    return lo + int(flat[-1]) + 1 if outer < inner else lo + int(flat[0])


def _walk(
    image: Image.Image, inner: int, near: int, border: int, span: tuple[int, int], axis: int, grid: _Grid
) -> int:
    """Find the edge between ``inner`` and ``near``; failing that, keep walking towards ``border``.

    A picture in a screenshot ends at a flat gap, a border line or the screenshot edge; without any
    flat line the picture simply continues (a plain photo), so the edge becomes the border.
    """
    edge = _find_edge(image, inner, near, span, axis, grid)
    direction = 1 if border > inner else -1
    while edge == near and near != border:
        start = near - direction  # re-examine the last line so none is skipped
        near = min(border, near + 4 * grid.step) if direction > 0 else max(border, near - 4 * grid.step)
        edge = _find_edge(image, start, near, span, axis, grid)
    return edge


def _refine(image: Image.Image, grid: _Grid) -> Box:
    """Turn the cell box into a pixel box by finding the flat gap that surrounds the picture."""
    w, h = image.size
    rows, cols = grid.text.shape
    cx0, cy0, cx1, cy1 = grid.box
    step = grid.step
    # Look first within one cell beyond the picture cells (the edge can sit anywhere in a boundary cell).
    near_l, near_t = max(0, (cx0 - 1) * step), max(0, (cy0 - 1) * step)
    near_r = w if cx1 >= cols else min(w, (cx1 + 1) * step)
    near_b = h if cy1 >= rows else min(h, (cy1 + 1) * step)
    # Start one cell inside: boundary cells may hang over the edge, inner ones are picture.
    mid_x, mid_y = (cx0 + cx1) * step // 2, (cy0 + cy1) * step // 2
    in_l, in_r = min((cx0 + 1) * step, mid_x), min(max((cx1 - 1) * step, mid_x), w - 1)
    in_t, in_b = min((cy0 + 1) * step, mid_y), min(max((cy1 - 1) * step, mid_y), h - 1)
    # Columns are judged over the rows found so far and vice versa, so a second round with the
    # better spans only re-checks the stretch between the start and the first-round edge.
    left = _walk(image, in_l, near_l, 0, (in_t, in_b + 1), 1, grid)
    right = _walk(image, in_r, near_r, w, (in_t, in_b + 1), 1, grid)
    top = _walk(image, in_t, near_t, 0, (left, right), 0, grid)
    bottom = _walk(image, in_b, near_b, h, (left, right), 0, grid)

    def again(inner: int, edge: int, outer: int, span: tuple[int, int], axis: int) -> int:
        found = _find_edge(image, inner, outer, span, axis, grid)
        return edge if found == outer else found

    if left > 0:
        left = again(in_l, left, left - 1, (top, bottom), 1)
    if right < w:
        right = again(in_r, right, right + 1, (top, bottom), 1)
    if top > 0:
        top = again(in_t, top, top - 1, (left, right), 0)
    if bottom < h:
        bottom = again(in_b, bottom, bottom + 1, (left, right), 0)
    return left, top, right, bottom


def _blank(image: Image.Image, box: Box, axis: int, grid: _Grid) -> tuple[bool, np.ndarray]:
    """Whether every line of a margin is flat (no text, icons or other content), and its mean colour."""
    left, top, right, bottom = box
    lines, span = ((top, bottom), (left, right)) if axis == 0 else ((left, right), (top, bottom))
    band = _band(image, lines, span, axis)[::2]  # every second line: text and icons are taller
    return bool(_flat_lines(band, grid).all()), band.reshape(-1, 3).mean(axis=0)


def _looks_like_screenshot(image: Image.Image, box: Box, grid: _Grid) -> bool:
    """Whether cropping to ``box`` removes screen content rather than part of a plain photo.

    Text or icons outside the picture are the evidence of a screenshot. Without them, only a
    letterbox-like frame is removed: blank margins on two opposite sides in the same colour. A
    single flat band is more likely an overcast sky or a wall that belongs to the photo.
    """
    w, h = image.size
    left, top, right, bottom = box
    step = grid.step
    rows, cols = grid.text.shape
    ys, xs = np.arange(rows) * step, np.arange(cols) * step
    outside_rows = (ys + step <= top) | (ys >= bottom)
    outside_cols = (xs + step <= left) | (xs >= right)
    outside = outside_rows[:, None] | outside_cols[None, :]
    if int((grid.text & outside).sum()) >= _MIN_TEXT_CELLS:
        return True
    pairs = (((0, 0, left, h), (right, 0, w, h), 1), ((0, 0, w, top), (0, bottom, w, h), 0))
    for box_a, box_b, axis in pairs:
        if min(box_a[2] - box_a[0], box_a[3] - box_a[1], box_b[2] - box_b[0], box_b[3] - box_b[1]) > 0:
            blank_a, colour_a = _blank(image, box_a, axis, grid)
            blank_b, colour_b = _blank(image, box_b, axis, grid)
            if blank_a and blank_b and np.abs(colour_a - colour_b).max() <= _UI_TOL:
                return True
    return False


def trim_screenshot(image: Image.Image) -> tuple[Image.Image, Box]:
    """Crop ``image`` to the main picture it shows; returns (crop, (left, top, right, bottom)).

    The box is in input pixel coordinates. When no clear picture region is found (or it would be
    tiny, or nearly the whole image) the input comes back unchanged with the full box.
    """
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    w, h = rgb.size
    full: Box = (0, 0, w, h)
    if w < 2 * _MIN_SIDE or h < 2 * _MIN_SIDE:
        return rgb, full
    grid = _coarse(rgb)
    if grid is None:
        return rgb, full
    box = _refine(rgb, grid)
    left, top, right, bottom = box
    bw, bh = right - left, bottom - top
    if bw < _MIN_SIDE or bh < _MIN_SIDE:
        return rgb, full
    area = bw * bh
    if area < _MIN_AREA_FRACTION * w * h or area > _MAX_AREA_FRACTION * w * h:
        return rgb, full
    if not _looks_like_screenshot(rgb, box, grid):
        return rgb, full
    return rgb.crop(box), box
