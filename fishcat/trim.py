"""Find the main picture (photo or illustration) inside a screenshot and crop away chrome, text and borders.

Pure numpy + Pillow; the analysis runs on a strided sample of pixels so it stays fast on large screenshots.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]  # left, top, right, bottom; right/bottom exclusive

# Longest side of the sampled analysis grid; keeps the cost independent of the screenshot size.
_GRID_SIDE = 256
# Cell size in grid samples; picture-ness is judged per cell.
_CELL = 8
# A cell is "picture" when its most common exact colour covers less than this share of it (UI is
# flat fills plus thin strokes, so one exact background colour dominates; photos have sensor noise)...
_CELL_MODE = 0.25
# ...and less than this share of it lies within _UI_TOL of a dominant screenshot colour. JPEG
# ringing around text breaks exact colours, but the background stays close to its true colour.
_CELL_UI = 0.5
# Dominant colours: the most frequent exact colours, each covering at least _UI_SHARE of the samples.
_UI_COLOURS = 8
_UI_SHARE = 0.01
_UI_TOL = 12
# Picture pieces at most _MERGE_GAP cells apart that share _MERGE_OVERLAP of their extent are merged.
_MERGE_GAP = 2
_MERGE_OVERLAP = 0.6
# A line next to the picture is "flat" (part of the surrounding gap or border) when _FLAT_SHARE of
# it is within _FLAT_TOL of its mean colour, or, for lossy screenshots, when _LOSSY_SHARE of it is
# within _LOSSY_TOL and its mean is a dominant colour (so smooth sky inside a photo does not count).
_EXACT_TOL = 1
_FLAT_TOL = 3
_FLAT_SHARE = 0.95
_LOSSY_TOL = 10
_LOSSY_SHARE = 0.9
# A screenshot counts as lossy when more than this share of its near-background pixels are not exact.
_LOSSY_PIXELS = 0.05
# Conservative limits: outside them the input is returned unchanged.
_MAX_AREA_FRACTION = 0.9
_MIN_AREA_FRACTION = 0.02
_MIN_SIDE = 32


@dataclass(frozen=True)
class _Cells:
    """Result of the coarse pass: the picture's cell box and how cells map to input pixels."""

    box: Box  # in cells, end exclusive
    step: int  # cell size in input pixels
    cols: int  # grid size in whole cells
    rows: int
    colours: np.ndarray  # dominant screenshot colours, shape (k, 3)
    lossy: bool  # whether the screenshot looks JPEG-compressed


def _mode_fraction(samples: np.ndarray) -> np.ndarray:
    """Share of the most common value in each row of ``samples`` (n, k)."""
    k = samples.shape[1]
    if k == 1:
        return np.ones(len(samples))
    ordered = np.sort(samples, axis=1)
    same = ordered[:, 1:] == ordered[:, :-1]
    # The longest run of equal values in a sorted row is the count of its most common value.
    idx = np.arange(1, k)
    run_start = np.maximum.accumulate(np.where(same, 0, idx), axis=1)
    return ((idx - run_start).max(axis=1) + 1) / k


def _dominant_colours(packed: np.ndarray) -> np.ndarray:
    """The screenshot's background colours: frequent exact colours, as an (k, 3) int32 array."""
    values, counts = np.unique(packed, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:_UI_COLOURS]
    keep = values[order][counts[order] >= _UI_SHARE * packed.size]
    return np.stack([(keep >> 16) & 255, (keep >> 8) & 255, keep & 255], axis=1).astype(np.int32)


def _near_colours(rgb: np.ndarray, colours: np.ndarray, tol: int) -> np.ndarray:
    """Mask of pixels in ``rgb`` (..., 3) within ``tol`` of any of ``colours`` in every channel."""
    near = np.zeros(rgb.shape[:-1], dtype=bool)
    for colour in colours:
        near |= (np.abs(rgb - colour) <= tol).all(axis=-1)
    return near


def _components(mask: np.ndarray, weight: np.ndarray) -> list[tuple[float, Box]]:
    """4-connected components of ``mask`` as (total weight, bounding box in cells, end exclusive)."""
    h, w = mask.shape
    seen = np.zeros((h, w), dtype=bool)
    found: list[tuple[float, Box]] = []
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        seen[y0, x0] = True
        queue = deque([(int(y0), int(x0))])
        total, bx0, by0, bx1, by1 = 0.0, int(x0), int(y0), int(x0), int(y0)
        while queue:
            y, x = queue.popleft()
            total += float(weight[y, x])
            bx0, by0, bx1, by1 = min(bx0, x), min(by0, y), max(bx1, x), max(by1, y)
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        found.append((total, (bx0, by0, bx1 + 1, by1 + 1)))
    return found


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


def _coarse_cells(arr: np.ndarray) -> _Cells | None:
    """Locate the picture on a grid of cells; None when no cell looks like a picture."""
    h, w = arr.shape[:2]
    s = max(1, round(max(w, h) / _GRID_SIDE))
    # Strided sampling (not averaging) keeps exact colours, which is what separates flat UI from photos.
    grid = arr[::s, ::s]
    rows, cols = grid.shape[0] // _CELL, grid.shape[1] // _CELL
    if rows < 1 or cols < 1:
        return None
    g = grid[: rows * _CELL, : cols * _CELL].astype(np.int32)
    packed = (g[..., 0] << 16) | (g[..., 1] << 8) | g[..., 2]
    per_cell = packed.reshape(rows, _CELL, cols, _CELL).transpose(0, 2, 1, 3).reshape(rows * cols, -1)
    mode = _mode_fraction(per_cell).reshape(rows, cols)
    colours = _dominant_colours(packed)
    near = _near_colours(g, colours, _UI_TOL)
    ui = near.reshape(rows, _CELL, cols, _CELL).mean(axis=(1, 3))
    # Lossless screenshots draw backgrounds in exact colours; JPEG leaves many "almost" pixels.
    n_near = int(near.sum())
    lossy = n_near > 0 and int((near & ~_near_colours(g, colours, 0)).sum()) > _LOSSY_PIXELS * n_near
    parts = _components((mode < _CELL_MODE) & (ui < _CELL_UI), 1.0 - mode)
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
                box = (min(box[0], other[0]), min(box[1], other[1]), max(box[2], other[2]), max(box[3], other[3]))
                rest.remove(other)
                merged = True
                break
    return _Cells(box, _CELL * s, cols, rows, colours, lossy)


def _flat_lines(region: np.ndarray, axis: int, tol: int, colours: np.ndarray | None) -> np.ndarray:
    """For each row (axis=0) or column (axis=1) of ``region``, whether it is one near-uniform colour."""
    r = region.astype(np.int16)
    along = 1 - axis
    mean = r.mean(axis=along, keepdims=True)
    dev = np.abs(r - mean).max(axis=-1)
    flat = (dev <= tol).mean(axis=along) >= _FLAT_SHARE
    if colours is not None and len(colours):
        lossy = (dev <= _LOSSY_TOL).mean(axis=along) >= _LOSSY_SHARE
        flat |= lossy & _near_colours(np.squeeze(mean, axis=along), colours, _UI_TOL)
    return flat


def _find_edge(
    arr: np.ndarray, inner: int, outer: int, span: tuple[int, int], axis: int, lossy: tuple[int, np.ndarray | None]
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
    if inner == outer or b <= a:
        return outer
    lo, hi = (outer, inner) if outer < inner else (inner + 1, outer)
    if hi <= lo:
        return outer
    region = arr[lo:hi, a:b] if axis == 0 else arr[a:b, lo:hi]
    flat = np.nonzero(_flat_lines(region, axis, *lossy))[0]
    if not flat.size:
        return outer
    # Walking towards smaller coordinates the nearest flat line is the last one, else the first.
    return lo + int(flat[-1]) + 1 if outer < inner else lo + int(flat[0])


def _refine(arr: np.ndarray, cells: _Cells) -> Box:
    """Turn the cell box into a pixel box by finding the flat gap that surrounds the picture."""
    h, w = arr.shape[:2]
    cx0, cy0, cx1, cy1 = cells.box
    step = cells.step
    # Search one cell beyond the picture cells (the edge can sit anywhere in a boundary cell), or up
    # to the image border when the picture cells reach the last whole cell.
    out_l, out_t = max(0, (cx0 - 1) * step), max(0, (cy0 - 1) * step)
    out_r = w if cx1 >= cells.cols else min(w, (cx1 + 1) * step)
    out_b = h if cy1 >= cells.rows else min(h, (cy1 + 1) * step)
    # Start one cell inside: boundary cells may hang over the edge, inner ones are picture.
    mid_x, mid_y = (cx0 + cx1) * step // 2, (cy0 + cy1) * step // 2
    in_l, in_r = min((cx0 + 1) * step, mid_x), max((cx1 - 1) * step, mid_x)
    in_t, in_b = min((cy0 + 1) * step, mid_y), max((cy1 - 1) * step, mid_y)
    in_r, in_b = min(in_r, w - 1), min(in_b, h - 1)
    left, top, right, bottom = in_l, in_t, in_r + 1, in_b + 1
    # The lenient test for JPEG would also accept smooth photo areas close to the page colour, so
    # lossless screenshots get only the strict one.
    lossy = (_FLAT_TOL, cells.colours) if cells.lossy else (_EXACT_TOL, None)
    # Columns are judged over the rows found so far and vice versa; a second round uses the better spans.
    for _ in range(2):
        left = _find_edge(arr, in_l, out_l, (top, bottom), 1, lossy)
        right = _find_edge(arr, in_r, out_r, (top, bottom), 1, lossy)
        top = _find_edge(arr, in_t, out_t, (left, right), 0, lossy)
        bottom = _find_edge(arr, in_b, out_b, (left, right), 0, lossy)
    return left, top, right, bottom


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
    arr = np.asarray(rgb)
    cells = _coarse_cells(arr)
    if cells is None:
        return rgb, full
    left, top, right, bottom = _refine(arr, cells)
    bw, bh = right - left, bottom - top
    if bw < _MIN_SIDE or bh < _MIN_SIDE:
        return rgb, full
    area = bw * bh
    if area < _MIN_AREA_FRACTION * w * h or area > _MAX_AREA_FRACTION * w * h:
        return rgb, full
    box = (left, top, right, bottom)
    return rgb.crop(box), box
