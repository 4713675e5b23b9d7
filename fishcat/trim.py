"""Find the main picture inside a screenshot and crop away window chrome, text and flat borders.

Pure numpy + Pillow; the analysis runs on a strided sample of pixels so it stays fast on large screenshots.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]

# Longest side of the sampled analysis grid; keeps the cost independent of the screenshot size.
_GRID_SIDE = 256
# Cell size in grid samples; picture-ness is judged per cell.
_CELL = 8
# A cell is "picture" when its most common exact colour covers less than this share of its samples.
_CELL_MODE = 0.25
# A line is "flat" (gap around the picture) when this share of its pixels is within _FLAT_TOL
# of the line's mean colour in every channel.
_FLAT_TOL = 3
_FLAT_SHARE = 0.95
# Conservative limits: outside them the input is returned unchanged.
_MAX_AREA_FRACTION = 0.9
_MIN_AREA_FRACTION = 0.02
_MIN_SIDE = 32


def _busy(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """True where pixel ``a`` differs from both its right neighbour ``b`` and its lower neighbour ``c``.

    UI is drawn with flat fills and mostly horizontal/vertical strokes, so its pixels nearly always
    equal at least one neighbour exactly; photos carry sensor noise and texture, so they rarely do.
    """
    return np.any(a != b, axis=-1) & np.any(a != c, axis=-1)


def _label_largest(mask: np.ndarray, weight: np.ndarray) -> np.ndarray | None:
    """Return the 4-connected component of ``mask`` with the largest total ``weight`` (or None)."""
    h, w = mask.shape
    labels = np.zeros((h, w), dtype=np.int32)
    best_label, best_weight, n = 0, 0.0, 0
    for y0, x0 in zip(*np.nonzero(mask)):
        if labels[y0, x0]:
            continue
        n += 1
        labels[y0, x0] = n
        total = 0.0
        queue = deque([(y0, x0)])
        while queue:
            y, x = queue.popleft()
            total += weight[y, x]
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not labels[ny, nx]:
                    labels[ny, nx] = n
                    queue.append((ny, nx))
        if total > best_weight:
            best_label, best_weight = n, total
    return labels == best_label if best_label else None


def _mode_fraction(samples: np.ndarray) -> np.ndarray:
    """Share of the most common exact colour in each row of packed colours ``samples`` (n, k)."""
    k = samples.shape[1]
    ordered = np.sort(samples, axis=1)
    same = ordered[:, 1:] == ordered[:, :-1]
    # Longest run of equal neighbours in the sorted row = count of the most common value.
    idx = np.arange(1, k)
    run_start = np.maximum.accumulate(np.where(same, 0, idx), axis=1)
    longest = (idx - run_start).max(axis=1) + 1 if k > 1 else np.ones(len(samples), dtype=np.int64)
    return longest / k


def _coarse_cells(arr: np.ndarray) -> tuple[tuple[int, int, int, int], int, tuple[int, int]] | None:
    """Locate the picture on a cell grid.

    Returns the picture's cell box (x0, y0, x1, y1; end exclusive), the cell size in input pixels and
    the grid size in cells, or None when no cell looks like a picture.
    """
    h, w = arr.shape[:2]
    s = max(1, round(max(w, h) / _GRID_SIDE))
    # Strided sampling (not averaging) keeps exact colours, which is what separates flat UI from photos.
    grid = arr[::s, ::s]
    ch, cw = grid.shape[0] // _CELL, grid.shape[1] // _CELL
    if ch < 1 or cw < 1:
        return None
    g = grid[: ch * _CELL, : cw * _CELL].astype(np.int32)
    packed = (g[..., 0] << 16) | (g[..., 1] << 8) | g[..., 2]
    cells = packed.reshape(ch, _CELL, cw, _CELL).transpose(0, 2, 1, 3).reshape(ch * cw, _CELL * _CELL)
    # UI cells (flat fill, text, icons) are dominated by one exact background colour; photo cells are not.
    mode = _mode_fraction(cells).reshape(ch, cw)
    comp = _label_largest(mode < _CELL_MODE, 1.0 - mode)
    if comp is None:
        return None
    ys, xs = np.nonzero(comp)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1), _CELL * s, (cw, ch)


def _flat_lines(region: np.ndarray, axis: int) -> np.ndarray:
    """For each row (axis=0) or column (axis=1) of ``region``, whether it is one near-uniform colour."""
    if region.size == 0:
        return np.zeros(region.shape[axis], dtype=bool)
    r = region.astype(np.int16)
    mean = r.mean(axis=1 - axis, keepdims=True)
    close = (np.abs(r - mean) <= _FLAT_TOL).all(axis=-1)
    return close.mean(axis=1 - axis) >= _FLAT_SHARE


def _find_edge(arr: np.ndarray, inner: int, outer: int, span: tuple[int, int], axis: int) -> int:
    """Walk from ``inner`` (inside the picture) towards ``outer`` and stop at the first flat line.

    ``axis`` 0 walks over rows (span = column range), 1 over columns (span = row range). Returns the
    picture's edge coordinate: the first line after the flat one, or ``outer`` when none is flat.
    """
    a, b = span
    # Judge only the middle of each line: drop shadows and rounded corners make the ends of the gap
    # lines next to a picture vary, while their middle stays one flat colour.
    trim = (b - a) // 5
    a, b = a + trim, b - trim
    if inner == outer or b <= a:
        return outer
    lo, hi = (outer, inner) if outer < inner else (inner + 1, outer)
    region = arr[lo:hi, a:b] if axis == 0 else arr[a:b, lo:hi]
    flat = _flat_lines(region, axis)
    idx = np.nonzero(flat)[0]
    if outer < inner:  # walking towards smaller coordinates: nearest flat line is the largest index
        return lo + int(idx[-1]) + 1 if idx.size else outer
    return lo + int(idx[0]) if idx.size else outer


def _refine(arr: np.ndarray, cells: tuple[int, int, int, int], step: int, grid: tuple[int, int]) -> Box:
    """Turn the cell box into a pixel box by finding the flat gap that surrounds the picture."""
    h, w = arr.shape[:2]
    cx0, cy0, cx1, cy1 = cells
    cw, ch = grid
    # Search one cell beyond the picture cells (the edge can sit anywhere in a boundary cell), or to
    # the image border when the picture cells reach the last analysed cell.
    out_l, out_t = max(0, (cx0 - 1) * step), max(0, (cy0 - 1) * step)
    out_r = w if cx1 >= cw else min(w, (cx1 + 1) * step)
    out_b = h if cy1 >= ch else min(h, (cy1 + 1) * step)
    # Start one cell inside: boundary cells may hang over the edge, inner ones are picture.
    mid_x, mid_y = (cx0 + cx1) * step // 2, (cy0 + cy1) * step // 2
    in_l, in_r = min((cx0 + 1) * step, mid_x), max((cx1 - 1) * step, mid_x)
    in_t, in_b = min((cy0 + 1) * step, mid_y), max((cy1 - 1) * step, mid_y)
    top, bottom = in_t, in_b + 1
    for _ in range(2):
        left = _find_edge(arr, in_l, out_l, (top, bottom), axis=1)
        right = _find_edge(arr, in_r, out_r, (top, bottom), axis=1)
        top = _find_edge(arr, in_t, out_t, (left, right), axis=0)
        bottom = _find_edge(arr, in_b, out_b, (left, right), axis=0)
    return left, top, right, bottom


def trim_screenshot(image: Image.Image) -> tuple[Image.Image, Box]:
    """Crop ``image`` to the main picture it contains; returns (crop, (left, top, right, bottom)).

    If no clear picture region is found, the input is returned unchanged with the full box.
    """
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    w, h = rgb.size
    full: Box = (0, 0, w, h)
    if w < 2 * _MIN_SIDE or h < 2 * _MIN_SIDE:
        return rgb, full
    arr = np.asarray(rgb)
    found = _coarse_cells(arr)
    if found is None:
        return rgb, full
    box = _refine(arr, *found)
    left, top, right, bottom = box
    bw, bh = right - left, bottom - top
    area = bw * bh
    if bw < _MIN_SIDE or bh < _MIN_SIDE or area < _MIN_AREA_FRACTION * w * h or area > _MAX_AREA_FRACTION * w * h:
        return rgb, full
    return rgb.crop(box), box
