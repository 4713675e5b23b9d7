#!/usr/bin/env python3
"""Curate fishcat's embedded default data set (assets/default/) and the Predict examples.

This script documents, and reproduces, how the shipped images were chosen:

1. read ``MANIFEST.csv`` of the shared source set ``default-catfish`` (167 images);
2. drop files by licence (copyleft: GPL-2, CC-BY-SA) and by content (not clearly a
   cat / a fish, duplicates) -- see ``LICENCE_EXCLUDED`` and ``CONTENT_EXCLUDED``;
3. resolve the exact per-file licence / author / source URL (GCompris fish photos from
   ``GCOMPRIS_FISHES_README.txt``, the two GCompris cat photos from upstream READMEs);
4. split reproducibly (hash-ordered, stratified per class x kind, emoji also per vendor;
   about 70/15/15; near-duplicate variants always land in the same split);
5. copy the files **byte for byte** (names unchanged) into
   ``assets/default/{train,val,test}/{cat,fish}/`` and write ``MANIFEST.csv``,
   ``ATTRIBUTION.md`` and ``LICENSES/``;
6. copy 4 Predict-tab examples to ``assets/examples/`` and draw the synthetic
   ``screenshot-cat.png`` (RGBA window "screenshot" with the chelsea photo in it).

Needs only the standard library and Pillow.  The source set lives beside the project::

    python assets/curate_default.py                    # ../shared/datasets/default-catfish
    python assets/curate_default.py --src /path/to/default-catfish

Never point it at ``book-catfish``: those photos carry no licence to redistribute.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import re
import shutil
import sys
from collections import Counter, defaultdict
from pathlib import Path

ASSETS = Path(__file__).resolve().parent
REPO = ASSETS.parent
DEFAULT_SRC = REPO.parent / "shared" / "datasets" / "default-catfish"
OUT = ASSETS / "default"
EXAMPLES = ASSETS / "examples"

SPLITS = ("train", "val", "test")
CLASSES = ("cat", "fish")
SEED = "fishcat-default-v1"  # changing it reshuffles the split
VAL_FRAC = TEST_FRAC = 0.15

# --------------------------------------------------------------------------- licences
# Source-manifest licence -> (shipped licence id, or None = excluded, reason)
LICENCE_POLICY = {
    "public-domain": ("public-domain", None),
    "public-domain (xfishtank) per debian/copyright": ("public-domain", None),
    "CC0 (skimage data)": ("CC0-1.0", None),
    "Apache-2.0": ("Apache-2.0", None),
    "CC-BY-4.0": ("CC-BY-4.0", None),
    "MIT": ("MIT", None),
    # resolved per file below (GCompris READMEs)
    "PD/CC0/CC-BY/CC-BY-SA (see README in rcc)": ("per-file", None),
    "see debian/copyright": ("per-file", None),
    # excluded: copyleft, would impose its terms on the project / its users
    "GPL-2": (None, "licence GPL-2 (tuxpaint-stamps-default): copyleft, not shipped"),
    "CC-BY-SA-3.0": (None, "licence CC-BY-SA-3.0 (Scratch 1.4 media): share-alike, not shipped"),
}

# Per-file licences accepted from the GCompris README (anything else -> excluded).
GCOMPRIS_OK = {"public domain": "public-domain", "cc0-1.0": "CC0-1.0",
               "cc-by-2.0": "CC-BY-2.0", "cc-by-3.0": "CC-BY-3.0", "cc-by-4.0": "CC-BY-4.0"}

# The two GCompris cat photos: the manifest only says "see debian/copyright"; these are
# the entries of the upstream READMEs next to the files in GCompris-qt
# (src/activities/explore_farm_animals/resource/animals/README and
#  src/activities/erase/resource/README).
GCOMPRIS_CAT_PHOTOS = {
    "cat/gcompris-qt-data__cat.png": dict(
        author="Loliloli (Wikimedia Commons)", license="public-domain",
        source="https://commons.wikimedia.org/wiki/File:Spielendes_K%C3%A4tzchen.JPG",
        notes="upstream README: explore_farm_animals/resource/animals/README"),
    "cat/gcompris-qt-data__kitten.png": dict(
        author="GalgenTX (Flickr, via Wikimedia Commons)", license="CC-BY-2.0", title="A posing kitten",
        source="https://commons.wikimedia.org/wiki/File:A_posing_kitten_(Flickr).jpg",
        notes="modified by GCompris (cropping, colour adjustment, sharpening, WebP); "
              "converted WebP->PNG for default-catfish; upstream README: erase/resource/README"),
}

OTHER_META = {
    "cat/scikit-image__chelsea.png": dict(
        author="Stefan van der Walt (scikit-image sample data)",
        source="https://github.com/scikit-image/scikit-image/blob/main/skimage/data/chelsea.png"),
}

VENDOR = {  # package -> (author / copyright holder, project URL)
    "emoji-datasource-google": ("Google (Noto Emoji)", "https://github.com/googlefonts/noto-emoji"),
    "emoji-datasource-twitter": ("Twitter, Inc and other contributors (Twemoji)",
                                 "https://github.com/twitter/twemoji"),
    "fluentui-emoji": ("Microsoft Corporation (Fluent UI Emoji)",
                       "https://github.com/microsoft/fluentui-emoji"),
    "gcompris-qt-data": ("xfishtank artists, via GCompris", "https://gcompris.net"),
    "openclipart-png": (None, "https://openclipart.org"),
}

# Openclipart author names as encoded in the openclipart-png file names.
OPENCLIPART_AUTHORS = [
    ("architetto", "Francesco Rollandin (architetto)"), ("archi", "Francesco Rollandin (architetto)"),
    ("gerald_g", "Gerald_G"), ("ron_golan", "Ron Golan"), ("rgolan", "Ron Golan"),
    ("benji", "benji"), ("massimo_aiello", "Massimo Aiello"), ("ganson", "ganson"),
]

# --------------------------------------------------------------------------- content
# Files dropped after looking at every image (contact sheets of all 167 files).
CONTENT_EXCLUDED = {
    "cat/openclipart-png__cat_scrathing_post_benji_01.png":
        "no cat in the picture: only a scratching post",
    "cat/openclipart-png__cartoon_vgcats_fanart_01.png":
        "anthropomorphic cartoon head (VG Cats fan art), human-like face: not clearly a cat",
    "cat/openclipart-png__cartoon_cat_gerald_g._02.png":
        "byte-identical duplicate of cartoon_cat_gerald_g._01.png",
    "cat/openclipart-png__sleeping_cat_rgolan_sup_r.png":
        "near-duplicate of sleeping_cat_ron_golan_01.png (same line drawing, same author)",
    "cat/fluentui-emoji__flat-grinning-cat.png":
        "byte-identical duplicate of fluentui-emoji__flat-cat-face.png",
    "cat/fluentui-emoji__modern-grinning-cat.png":
        "near-duplicate of fluentui-emoji__modern-cat-face.png (same design)",
    "fish/fluentui-emoji__flat-blowfish.png":
        "amorphous spiky blob (the 'octopus-like' emoji): not clearly a fish",
    "fish/fluentui-emoji__modern-blowfish.png":
        "amorphous spiky blob (the 'octopus-like' emoji): not clearly a fish",
    "fish/gcompris-qt-data__manta.png":
        "manta/eagle rays (flat, winged, whip tail): not clearly a fish to a viewer",
    "fish/openclipart-png__seahorse.png":
        "seahorse: a fish biologically, but upright, fish-atypical shape; kept the set unambiguous",
}

# Split pins (everything else is assigned by the hash order).  Only 3 real cat photos
# exist: one per split, with at least one in train; chelsea goes to test because it is
# also the Predict example and the screenshot content.
PINNED_SPLIT = {
    "cat/gcompris-qt-data__cat.png": "train",
    "cat/gcompris-qt-data__kitten.png": "val",
    "cat/scikit-image__chelsea.png": "test",
}

# Predict-tab examples: byte-for-byte copies of shipped (non-train) files.
EXAMPLE_FILES = [
    "cat/scikit-image__chelsea.png",                 # cat photo
    "cat/fluentui-emoji__modern-cat-face.png",       # cat emoji
    "fish/gcompris-qt-data__fish13.png",             # fish photo (ocellated wrasse)
    "fish/gcompris-qt-data__fish14.png",             # fish photo (anthias on a reef)
]
SCREENSHOT_SOURCE = "cat/scikit-image__chelsea.png"

LICENCE_URL = {
    "public-domain": "https://creativecommons.org/publicdomain/mark/1.0/",
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY-2.0": "https://creativecommons.org/licenses/by/2.0/",
    "CC-BY-3.0": "https://creativecommons.org/licenses/by/3.0/",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "Apache-2.0": "https://www.apache.org/licenses/LICENSE-2.0",
    "MIT": "https://opensource.org/license/mit",
}

MIT_FLUENT = """MIT License

Copyright (c) Microsoft Corporation.

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""
APACHE_SYSTEM_COPY = Path("/usr/share/common-licenses/Apache-2.0")

MANIFEST_FIELDS = ["split", "class", "file", "package", "kind", "license", "author",
                   "source", "package_path", "sha256", "bytes", "notes"]


# --------------------------------------------------------------------------- helpers
def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def parse_gcompris_fishes(text: str) -> dict:
    """'fishN.webp' -> {author, source, license} from GCOMPRIS_FISHES_README.txt."""
    out = {}
    for block in re.split(r"\n\s*\n", text.strip()):
        fields, files, in_files = {}, [], False
        for line in block.splitlines():
            if in_files:
                files += line.split()
            elif line.startswith("Files:"):
                in_files = True
                files += line[len("Files:"):].split()
            elif ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
        for f in files:
            out[f] = dict(author=fields.get("copyright", ""), source=fields.get("source", ""),
                          license=fields.get("license", ""))
    return out


def openclipart_author(name: str) -> str:
    low = name.lower()
    for key, author in OPENCLIPART_AUTHORS:
        if key in low:
            return author + " (per Openclipart file name)"
    return "unknown Openclipart contributor"


def group_key(file: str) -> str:
    """Near-duplicate variants share a group (and therefore a split)."""
    cls, name = file.split("/", 1)
    name = re.sub(r"__(flat|modern)-", "__", name)  # Fluent flat/modern renderings
    return f"{cls}/{name}"


def stratum(row) -> tuple:
    return (row["cls"], row["kind"], row["package"] if row["kind"] == "emoji" else "")


def n_holdout(n: int, frac: float) -> int:
    return max(1, int(frac * n + 0.5)) if n >= 3 else 0


def assign_splits(rows) -> dict:
    """file -> split.  Hash-ordered groups, stratified per (class, kind[, vendor])."""
    split = {}
    strata = defaultdict(set)
    for r in rows:
        if r["file"] not in PINNED_SPLIT:
            strata[stratum(r)].add(group_key(r["file"]))
    group_split = {}
    for key in sorted(strata):
        groups = sorted(strata[key], key=lambda g: hashlib.sha256(f"{SEED}|{g}".encode()).hexdigest())
        n = len(groups)
        n_test, n_val = n_holdout(n, TEST_FRAC), n_holdout(n, VAL_FRAC)
        for i, g in enumerate(groups):
            group_split[g] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    for r in rows:
        f = r["file"]
        split[f] = PINNED_SPLIT.get(f) or group_split[group_key(f)]
    return split


# --------------------------------------------------------------------------- screenshot
def make_screenshot(photo: Path, dest: Path) -> None:
    """A synthetic 1280x800 RGBA 'screenshot' of an image-viewer window showing a cat."""
    from PIL import Image, ImageDraw, ImageFont

    W, H, R = 1280, 800, 14

    def font(size):
        try:
            return ImageFont.load_default(size=size)
        except TypeError:  # Pillow < 10.1: bitmap default font only
            return ImageFont.load_default()

    f_small, f_text, f_title = font(13), font(15), font(22)
    img = Image.new("RGBA", (W, H), (246, 247, 249, 255))
    d = ImageDraw.Draw(img)
    # title bar with the three "traffic light" dots
    d.rectangle([0, 0, W, 38], fill=(222, 222, 224, 255))
    d.line([0, 38, W, 38], fill=(196, 196, 200, 255))
    for i, col in enumerate([(255, 95, 87), (254, 188, 46), (40, 200, 64)]):
        cx = 22 + 22 * i
        d.ellipse([cx - 7, 12, cx + 7, 26], fill=col + (255,), outline=(0, 0, 0, 40))
    d.text((W // 2, 19), "chelsea.png - Photos", font=f_text, fill=(60, 60, 64, 255), anchor="mm")
    # toolbar with navigation buttons and an address bar
    d.rectangle([0, 39, W, 84], fill=(236, 236, 238, 255))
    d.line([0, 84, W, 84], fill=(205, 205, 210, 255))
    for i, label in enumerate(["<", ">", "C"]):
        x = 18 + 34 * i
        d.rounded_rectangle([x, 50, x + 26, 74], 6, fill=(250, 250, 250, 255), outline=(200, 200, 205, 255))
        d.text((x + 13, 62), label, font=f_text, fill=(90, 90, 95, 255), anchor="mm")
    d.rounded_rectangle([130, 49, W - 130, 75], 13, fill=(255, 255, 255, 255), outline=(190, 190, 196, 255))
    d.text((148, 62), "https://photos.example.org/albums/pets/chelsea.png", font=f_text,
           fill=(45, 45, 50, 255), anchor="lm")
    d.rounded_rectangle([W - 112, 50, W - 18, 74], 6, fill=(66, 133, 244, 255))
    d.text((W - 65, 62), "Share", font=f_text, fill=(255, 255, 255, 255), anchor="mm")
    # left sidebar
    d.rectangle([0, 85, 239, H], fill=(255, 255, 255, 255))
    d.line([239, 85, 239, H], fill=(215, 215, 220, 255))
    d.text((20, 108), "LIBRARY", font=f_small, fill=(140, 140, 148, 255))
    items = ["Photos", "Albums", "Favourites", "Recently added", "Shared", "Trash"]
    for i, t in enumerate(items):
        y = 140 + 34 * i
        if t == "Albums":
            d.rounded_rectangle([10, y - 14, 229, y + 14], 7, fill=(229, 239, 255, 255))
        d.text((30, y), t, font=f_text, fill=(40, 40, 45, 255), anchor="lm")
    d.text((20, 370), "ALBUMS", font=f_small, fill=(140, 140, 148, 255))
    for i, t in enumerate(["Pets (24)", "Holidays 2023 (118)", "Garden (37)", "Screenshots (9)"]):
        d.text((30, 402 + 30 * i), t, font=f_text, fill=(70, 70, 76, 255), anchor="lm")
    d.text((20, H - 40), "1,284 photos - 3.2 GB", font=f_small, fill=(150, 150, 156, 255))
    # content area: heading, the photo at 500 px wide with a frame, a caption
    d.text((280, 112), "Pets", font=f_title, fill=(30, 30, 34, 255))
    d.text((282, 142), "Album - 24 photos - updated yesterday", font=f_small, fill=(120, 120, 126, 255))
    ph = Image.open(photo).convert("RGB")
    pw = 500
    ph = ph.resize((pw, round(ph.height * pw / ph.width)), Image.LANCZOS)
    px, py = 280 + (W - 280 - 40 - pw) // 2, 180
    d.rectangle([px - 9, py - 9, px + pw + 9, py + ph.height + 9], fill=(225, 225, 230, 255))
    d.rectangle([px - 8, py - 8, px + pw + 8, py + ph.height + 8], fill=(255, 255, 255, 255))
    img.paste(ph, (px, py))
    cy = py + ph.height + 28
    d.text((px, cy), "chelsea.png", font=f_text, fill=(30, 30, 34, 255))
    d.text((px, cy + 22), "451 x 300 - PNG - 218 KB - scikit-image sample data (CC0)",
           font=f_small, fill=(120, 120, 126, 255))
    # window outline, then transparent rounded corners
    d.rounded_rectangle([0, 0, W - 1, H - 1], R, outline=(150, 150, 156, 255))
    mask = Image.new("L", (W, H), 0)
    ImageDraw.Draw(mask).rounded_rectangle([0, 0, W - 1, H - 1], R, fill=255)
    img.putalpha(mask)
    img.save(dest, format="PNG", optimize=True)


# --------------------------------------------------------------------------- main
def resolve(row, gc_fishes) -> tuple:
    """-> (licence id or None, author, source URL, notes, exclusion reason or None)."""
    f, pkg = row["file"], row["package"]
    lic, reason = LICENCE_POLICY.get(row["license"], (None, f"unknown licence {row['license']!r}"))
    if lic is None:
        return None, "", "", "", reason
    author = source = notes = ""
    if lic == "per-file":
        if f in GCOMPRIS_CAT_PHOTOS:
            m = GCOMPRIS_CAT_PHOTOS[f]
            lic, author, source, notes = m["license"], m["author"], m["source"], m["notes"]
            if "title" in m:
                notes = f"title: {m['title']}; " + notes
        else:
            webp = row["source_path"].rsplit("/", 1)[-1]
            m = gc_fishes.get(webp)
            if m is None:
                return None, "", "", "", f"no per-file licence for {webp} in GCOMPRIS_FISHES_README.txt"
            lic = GCOMPRIS_OK.get(m["license"].lower())
            if lic is None:
                return None, "", "", "", f"per-file licence {m['license']!r} is not PD/CC0/CC-BY"
            author, source = m["author"] + " (Wikimedia Commons)", m["source"]
            notes = "via GCompris (resized, WebP); converted WebP->PNG for default-catfish"
    elif pkg == "openclipart-png":
        author = openclipart_author(f)
        source = VENDOR[pkg][1] + " (Debian openclipart-png: " + row["source_path"] + ")"
    elif pkg in VENDOR:
        author, source = VENDOR[pkg][0], VENDOR[pkg][1]
        if pkg == "fluentui-emoji":
            notes = "SVG rendered to 256x256 PNG for default-catfish"
        if pkg == "gcompris-qt-data":
            notes = "xfishtank sprite (public domain) per GCompris debian/copyright"
    if f in OTHER_META:
        author, source = OTHER_META[f]["author"], OTHER_META[f]["source"]
    return lic, author, source, notes, None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC, help="default-catfish folder")
    args = ap.parse_args(argv)
    src = args.src.resolve()
    if "book-catfish" in str(src):
        sys.exit("refusing: book-catfish has no licence to redistribute")
    rows = list(csv.DictReader(open(src / "MANIFEST.csv", newline="", encoding="utf-8")))
    gc_fishes = parse_gcompris_fishes((src / "GCOMPRIS_FISHES_README.txt").read_text(encoding="utf-8"))

    kept, excluded = [], []
    for r in rows:
        lic, author, source, notes, reason = resolve(r, gc_fishes)
        if reason is None and r["file"] in CONTENT_EXCLUDED:
            reason = CONTENT_EXCLUDED[r["file"]]
        if reason:
            excluded.append((r["file"], r["license"], reason))
        else:
            kept.append(dict(r, lic=lic, author=author, source=source, notes=notes))
    missing = (set(CONTENT_EXCLUDED) | set(PINNED_SPLIT) | set(EXAMPLE_FILES)) - {r["file"] for r in rows}
    assert not missing, f"names not in the source manifest: {sorted(missing)}"

    split = assign_splits(kept)

    # copy byte for byte into a fresh tree
    for s in SPLITS:
        shutil.rmtree(OUT / s, ignore_errors=True)
        for c in CLASSES:
            (OUT / s / c).mkdir(parents=True, exist_ok=True)
    manifest, by_src = [], {}
    for r in kept:
        s, c, name = split[r["file"]], r["cls"], r["file"].split("/", 1)[1]
        dst = OUT / s / c / name
        shutil.copyfile(src / r["file"], dst)
        digest = sha256(dst)
        assert digest == sha256(src / r["file"])
        manifest.append({"split": s, "class": c, "file": f"{s}/{c}/{name}", "package": r["package"],
                         "kind": r["kind"], "license": r["lic"], "author": r["author"],
                         "source": r["source"] or r["source_path"], "package_path": r["source_path"],
                         "sha256": digest, "bytes": dst.stat().st_size, "notes": r["notes"]})
        by_src[r["file"]] = manifest[-1]
    manifest.sort(key=lambda m: (SPLITS.index(m["split"]), m["class"], m["file"]))
    with open(OUT / "MANIFEST.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, MANIFEST_FIELDS, lineterminator="\n")
        w.writeheader()
        w.writerows(manifest)

    # licence texts
    (OUT / "LICENSES").mkdir(exist_ok=True)
    (OUT / "LICENSES" / "MIT-fluentui-emoji.txt").write_text(MIT_FLUENT, encoding="utf-8")
    apache = OUT / "LICENSES" / "Apache-2.0.txt"
    if APACHE_SYSTEM_COPY.exists():
        shutil.copyfile(APACHE_SYSTEM_COPY, apache)
    assert apache.exists(), "LICENSES/Apache-2.0.txt missing (no system copy to take it from)"

    # examples
    EXAMPLES.mkdir(exist_ok=True)
    ex_rows = []
    for f in EXAMPLE_FILES:
        m = by_src[f]
        assert m["split"] != "train", (f, m["split"])
        name = f.split("/", 1)[1]
        shutil.copyfile(OUT / m["file"], EXAMPLES / name)
        ex_rows.append(dict(m, file=name, notes=f"byte-for-byte copy of default/{m['file']}"))
    shot = EXAMPLES / "screenshot-cat.png"
    make_screenshot(OUT / by_src[SCREENSHOT_SOURCE]["file"], shot)
    sm = by_src[SCREENSHOT_SOURCE]
    ex_rows.append(dict(sm, split="", file=shot.name, package="fishcat (generated)", kind="screenshot",
                        source="assets/curate_default.py make_screenshot()", package_path="",
                        sha256=sha256(shot), bytes=shot.stat().st_size,
                        notes=f"synthetic RGBA window screenshot containing default/{sm['file']} "
                              f"(resized to 500 px wide); class cat"))
    with open(EXAMPLES / "MANIFEST.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, MANIFEST_FIELDS, lineterminator="\n")
        w.writeheader()
        w.writerows(ex_rows)
    write_examples_readme(ex_rows)
    write_attribution(manifest, excluded, src)

    # report
    counts = Counter((m["split"], m["class"]) for m in manifest)
    kinds = Counter((m["split"], m["class"], m["kind"]) for m in manifest)
    for s in SPLITS:
        for c in CLASSES:
            assert counts[s, c] >= 3, (s, c, counts[s, c])
    assert any(m["split"] == "train" and m["class"] == "cat" and m["kind"] == "photo" for m in manifest)
    print(f"kept {len(manifest)} of {len(rows)}; excluded {len(excluded)}")
    for s in SPLITS:
        print(f"{s:5s} " + "  ".join(
            f"{c}={counts[s, c]:3d} (" + ", ".join(f"{k}:{kinds[s, c, k]}" for k in
                                                 ("photo", "photo-cutout", "clipart", "emoji") if kinds[s, c, k]) + ")"
            for c in CLASSES))
    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    print(f"assets/ total {total} bytes")
    return 0


def write_examples_readme(ex_rows) -> None:
    lines = ["# Predict-tab examples", "",
             "Generated by `assets/curate_default.py`; per-file licence/source also in `MANIFEST.csv` here.",
             "Each image except the screenshot is a byte-for-byte copy of a shipped, *non-train* file of",
             "`assets/default/` (attribution: `assets/default/ATTRIBUTION.md`).", "",
             "| file | class | kind | licence | author | copy of |", "|---|---|---|---|---|---|"]
    for r in ex_rows:
        copy = re.search(r"default/(\S+)", r["notes"]).group(1)
        if r["kind"] == "screenshot":
            copy = f"synthetic, shows {copy}"
        lines.append(f"| `{r['file']}` | {r['class']} | {r['kind']} | {r['license']} | {r['author']} | {copy} |")
    lines += ["", "`screenshot-cat.png` is synthetic: a 1280x800 RGBA PNG of an image-viewer window",
              "(grey title bar with three dots, address bar, white sidebar with text, PIL default font)",
              "with the chelsea photo (scikit-image, CC0) in the content area at 500 px wide; the rounded",
              "window corners are transparent (alpha 0), every other pixel is opaque. It exercises the",
              "RGBA/screenshot path of preprocessing; its expected class is `cat`.", ""]
    (EXAMPLES / "README.md").write_text("\n".join(lines), encoding="utf-8")


def write_attribution(manifest, excluded, src) -> None:
    by_lic, by_pkg = defaultdict(list), defaultdict(list)
    for m in manifest:
        by_lic[m["license"]].append(m)
        by_pkg[m["package"]].append(m)
    assert {m["license"] for m in by_pkg["emoji-datasource-twitter"]} <= {"CC-BY-4.0"}
    assert {m["license"] for m in by_pkg["emoji-datasource-google"]} <= {"Apache-2.0"}
    assert {m["license"] for m in by_pkg["fluentui-emoji"]} <= {"MIT"}
    L = ["# Default data set: attribution and licences", "",
         "`assets/default/` is a curated subset of the `default-catfish` collection (images taken from",
         "packages of public registries). It is produced by `assets/curate_default.py`; every shipped file",
         "is listed in `MANIFEST.csv` with split, class, package, kind, licence, author, source, original",
         "path inside its package and SHA-256. The image files are **not** covered by the project's own",
         "licence: each keeps the licence below. Files are unmodified copies of the `default-catfish`",
         "PNGs (which were converted to PNG from the packages' WebP/SVG/PNG originals, see `notes`).", "",
         f"Shipped: {len(manifest)} files. Licences: " +
         ", ".join(f"{k} ({len(v)})" for k, v in sorted(by_lic.items())) + ".", "",
         "## Twemoji (CC-BY 4.0)", "",
         "Twemoji by Twitter, Inc and other contributors, CC-BY 4.0.",
         "Copyright 2019 Twitter, Inc and other contributors. Graphics licensed under CC-BY 4.0:",
         "https://creativecommons.org/licenses/by/4.0/ - source: https://github.com/twitter/twemoji",
         "(64x64 PNGs as packaged in npm `emoji-datasource-twitter@16.0.0`, unmodified).", "",
         "Files: " + ", ".join(f"`{m['file']}`" for m in by_pkg["emoji-datasource-twitter"]), "",
         "## Noto Emoji (Apache License 2.0)", "",
         "Noto Emoji images by Google, Copyright Google Inc. / Google LLC, licensed under the Apache",
         "License, Version 2.0 (https://www.apache.org/licenses/LICENSE-2.0, full text in",
         "`LICENSES/Apache-2.0.txt`). Source: https://github.com/googlefonts/noto-emoji (64x64 PNGs as",
         "packaged in npm `emoji-datasource-google@16.0.0`, unmodified).", "",
         "Files: " + ", ".join(f"`{m['file']}`" for m in by_pkg["emoji-datasource-google"]), "",
         "## Fluent UI Emoji (MIT)", "",
         "Fluent Emoji by Microsoft, Copyright (c) Microsoft Corporation, MIT License (full text with",
         "the copyright notice in `LICENSES/MIT-fluentui-emoji.txt`; https://opensource.org/license/mit).",
         "Source: https://github.com/microsoft/fluentui-emoji (npm `fluentui-emoji@1.3.0`; the flat and",
         "modern SVGs were rendered to 256x256 PNG).", "",
         "Files: " + ", ".join(f"`{m['file']}`" for m in by_pkg["fluentui-emoji"]), "",
         "## Photos under CC-BY", ""]
    for m in manifest:
        if m["license"].startswith("CC-BY-") and m["package"] != "emoji-datasource-twitter":
            t = re.match(r"title: ([^;]+); ", m["notes"])
            title = f"\"{t.group(1)}\" " if t else ""
            L.append(f"- `{m['file']}`: photo {title}by {m['author']}, {m['source']}, licensed "
                     f"{m['license']} ({LICENCE_URL[m['license']]}). Changes: "
                     f"{re.sub(r'^title: [^;]+; ', '', m['notes'])}.")
    L += ["", "## Public domain and CC0 (no attribution required; given as a courtesy)", ""]
    for m in by_lic.get("CC0-1.0", []) + by_lic.get("public-domain", []):
        if m["package"] == "gcompris-qt-data" and m["kind"] == "photo-cutout":
            continue
        L.append(f"- `{m['file']}`: {m['author'] or 'unknown'}, {m['source']}, {m['license']}")
    cut = [m for m in by_lic.get("public-domain", []) if m["kind"] == "photo-cutout"]
    L += ["", f"- {len(cut)} fish sprites from GCompris (`gcompris-qt-data`, `src/activities/clickgame/resource/`),",
          "  originally from xfishtank, public domain per GCompris' debian/copyright: " +
          ", ".join(f"`{m['file']}`" for m in cut), "",
          "Openclipart drawings (`openclipart-png`) are public domain; author names are as encoded in the",
          "Openclipart file names.", "",
          "## Excluded from the source collection", "",
          f"{len(excluded)} of the {len(manifest) + len(excluded)} `default-catfish` files are not shipped:", "",
          "| source file | source licence | reason |", "|---|---|---|"]
    for f, lic, reason in sorted(excluded, key=lambda e: (e[2], e[0])):
        L.append(f"| `{f}` | {lic} | {reason} |")
    L += ["", "Nothing from `book-catfish` (ImageNet/Flickr photos without a redistribution licence) is",
          "used here or anywhere in the project's files.", ""]
    (OUT / "ATTRIBUTION.md").write_text("\n".join(L), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
