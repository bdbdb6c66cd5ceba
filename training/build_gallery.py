"""Build the default photo gallery from Debian's ``tuxpaint-stamps-default`` package.

The package (GPL-2) ships Tux Paint's "rubber stamps": object pictures on transparent
backgrounds, most of them real photographs, each with a ``.txt`` whose first line is an
English description. This script keeps the photographs, composites each on white, crops it
to its alpha bounding box, centres it on a square white canvas with a small margin, resizes
it to ``--size`` pixels and writes ``<out>/photos/<id>.jpg``, ``<out>/metadata.json`` and
``<out>/ATTRIBUTION.md``.

Which stamps are photographs is decided by a rule (file type, folder, ``.dat`` flags, object
size and colour statistics: cartoons are drawn in few flat colours) and then by a reviewed
list, ``training/gallery_review.json``, whose ``include`` / ``exclude`` entries (paths
relative to the stamps folder, each with its reason) override the rule.

Get the stamps without installing the package::

    apt-get update
    (cd /tmp && apt-get download tuxpaint-stamps-default)
    dpkg -x /tmp/tuxpaint-stamps-default_*.deb /tmp/tuxstamps
    python training/build_gallery.py   # from the repository root

It then adds the reviewed photographs of ``training/gallery_extra.json`` from Debian's
``gcompris-qt-data`` (animals Tux Paint lacks, a house cat first among them; see
``training/gcompris.py``): full-frame photos, cropped to a square, each with its own author,
licence and source URL in the metadata and in ``ATTRIBUTION.md``::

    (cd /tmp && apt-get download gcompris-qt-data)
    dpkg -x /tmp/gcompris-qt-data_*.deb /tmp/gcompris

The output is deterministic: the same input gives byte-identical files.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import math
import re
import shutil
import subprocess
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

try:  # run as a script (python training/build_gallery.py) or as a module (tests)
    from training import gcompris
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from training import gcompris

PACKAGE = "tuxpaint-stamps-default"
LICENSE = "GPL-2.0"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_STAMP_DIRS = (
    Path("/tmp/tuxstamps/usr/share/tuxpaint/stamps"),
    Path("/usr/share/tuxpaint/stamps"),
)
GPL2_TEXT = Path("/usr/share/common-licenses/GPL-2")

# --- the rule -------------------------------------------------------------------------
# Folder names (any level, case-insensitive) whose stamps are not photographs of objects.
EXCLUDED_DIRS = frozenset(
    {
        "symbols",
        "alphabets",
        "alphabet",
        "letters",
        "money",
        "signs",
        "roadsigns",
        "flags",
        "cartoon",
    }
)
# Tux Paint shows "<stem>_mirror.png" / "<stem>_flip.png" as the mirrored / flipped view of
# "<stem>.png": variants, not stamps.
VARIANT_SUFFIXES = ("_mirror", "_flip")
# ".dat" flag of single-colour silhouettes that Tux Paint recolours wholesale.
COLORABLE_FLAGS = frozenset({"colorable", "nomirrorcolorable"})
ALPHA_OPAQUE = 128  # alpha at or above which a pixel is part of the object (statistics)
ALPHA_BBOX = 16  # alpha at or above which a pixel counts for the crop box
MIN_OBJECT_PX = 32  # longest side of the object's box below which a stamp is too small
MAX_FLAT_FRACTION = 0.15  # share of neighbouring object pixels of identical colour
MIN_DISTINCT_COLOURS = 128  # distinct colours (5 bits per channel) over the object
MARGIN = 0.05  # white margin on each side of the square canvas, as a share of its side


@dataclass(frozen=True)
class Stamp:
    """One stamp file, ``rel`` being its POSIX path relative to the stamps folder."""

    root: Path
    rel: str

    @property
    def path(self) -> Path:
        return self.root / self.rel

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.rel.split("/"))

    @property
    def stem(self) -> str:
        return Path(self.rel).stem

    @property
    def kind(self) -> str:
        return Path(self.rel).suffix.lower().lstrip(".")

    @property
    def category(self) -> str:
        return self.parts[0] if len(self.parts) > 1 else ""

    @property
    def subcategory(self) -> str | None:
        return "/".join(self.parts[1:-1]) or None


@dataclass(frozen=True)
class ColourStats:
    opaque_px: int
    distinct_colours: int
    flat_fraction: float
    object_px: int  # longest side of the alpha bounding box


@dataclass(frozen=True)
class Decision:
    rel: str
    keep: bool
    by: str  # "rule" or "review"
    reason: str


@dataclass(frozen=True)
class Review:
    include: dict[str, str]
    exclude: dict[str, str]


# --- finding and judging stamps ---------------------------------------------------------
def default_stamps_dir() -> Path | None:
    return next((d for d in DEFAULT_STAMP_DIRS if d.is_dir()), None)


def find_stamps(root: Path) -> list[Stamp]:
    """All ``.png`` and ``.svg`` stamps under ``root`` (mirror/flip variants left out), sorted."""
    found = []
    for p in root.rglob("*"):
        if not p.is_file() or p.suffix.lower() not in (".png", ".svg"):
            continue
        if p.suffix.lower() == ".png" and p.stem.endswith(VARIANT_SUFFIXES):
            continue
        found.append(Stamp(root, p.relative_to(root).as_posix()))
    return sorted(found, key=lambda s: s.rel)


def dat_flags(stamp: Stamp) -> set[str]:
    """The flags in the stamp's ``.dat`` file (e.g. ``colorable``, ``tintable``)."""
    dat = stamp.path.with_suffix(".dat")
    if not dat.is_file():
        return set()
    return {
        ln.strip().lower()
        for ln in dat.read_text("utf-8", "replace").splitlines()
        if ln.strip()
    }


def load_rgba(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        return im.convert("RGBA")


def alpha_bbox(im: Image.Image) -> tuple[int, int, int, int] | None:
    a = np.asarray(im.getchannel("A"))
    ys, xs = np.nonzero(a >= ALPHA_BBOX)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def colour_stats(im: Image.Image) -> ColourStats:
    """Colour statistics of the object (pixels with alpha >= ALPHA_OPAQUE) of an RGBA image."""
    a = np.asarray(im)
    mask = a[..., 3] >= ALPHA_OPAQUE
    rgb = a[..., :3].astype(np.int16)
    q = rgb[mask] >> 3
    keys = (q[:, 0].astype(np.int32) << 10) | (q[:, 1].astype(np.int32) << 5) | q[:, 2]
    pairs = same = 0
    for first, second in ((np.s_[:-1, :], np.s_[1:, :]), (np.s_[:, :-1], np.s_[:, 1:])):
        both = mask[first] & mask[second]  # vertical, then horizontal neighbours
        equal = np.all(rgb[first] == rgb[second], axis=-1)
        pairs += int(both.sum())
        same += int((equal & both).sum())
    box = alpha_bbox(im)
    return ColourStats(
        opaque_px=int(mask.sum()),
        distinct_colours=len(np.unique(keys)),
        flat_fraction=round(same / pairs, 4) if pairs else 1.0,
        object_px=max(box[2] - box[0], box[3] - box[1]) if box else 0,
    )


def rule(stamp: Stamp, stems_with_svg: set[str]) -> tuple[bool, str]:
    """Whether the rule takes ``stamp`` for a photograph, and why."""
    if stamp.kind == "svg":
        return False, "svg: vector drawing"
    hit = sorted({p.lower() for p in stamp.parts[:-1]} & EXCLUDED_DIRS)
    if hit:
        return False, f"folder: {hit[0]}"
    if str(Path(stamp.rel).with_suffix("")) in stems_with_svg:
        return False, "png twin of an svg: vector drawing"
    if dat_flags(stamp) & COLORABLE_FLAGS:
        return False, "dat: colorable silhouette"
    st = colour_stats(load_rgba(stamp.path))
    if st.object_px < MIN_OBJECT_PX:
        return False, f"too small: {st.object_px} px < {MIN_OBJECT_PX}"
    if st.flat_fraction > MAX_FLAT_FRACTION:
        return False, f"flat colours: {st.flat_fraction:.3f} > {MAX_FLAT_FRACTION}"
    if st.distinct_colours < MIN_DISTINCT_COLOURS:
        return False, f"few colours: {st.distinct_colours} < {MIN_DISTINCT_COLOURS}"
    return True, (
        f"photo-like: flat {st.flat_fraction:.3f}, {st.distinct_colours} colours, {st.object_px} px"
    )


def load_review(path: Path | None) -> Review:
    """Read ``{"include": [{"file", "reason"}...], "exclude": [...]}``; a missing file is empty."""
    if path is None or not path.is_file():
        return Review({}, {})
    data = json.loads(path.read_text("utf-8"))
    lists: dict[str, dict[str, str]] = {}
    for key in ("include", "exclude"):
        entries = data.get(key, [])
        lists[key] = {}
        for e in entries:
            if not isinstance(e, dict) or not e.get("file") or not e.get("reason"):
                raise ValueError(
                    f"{path}: every {key} entry needs a 'file' and a 'reason': {e!r}"
                )
            lists[key][str(e["file"])] = str(e["reason"])
    both = sorted(set(lists["include"]) & set(lists["exclude"]))
    if both:
        raise ValueError(f"{path}: listed in both include and exclude: {both}")
    return Review(lists["include"], lists["exclude"])


def decide(stamps: Sequence[Stamp], review: Review) -> list[Decision]:
    """The rule's verdict on every stamp, overridden by the review list."""
    svg_stems = {str(Path(s.rel).with_suffix("")) for s in stamps if s.kind == "svg"}
    out = []
    for s in stamps:
        if s.rel in review.exclude:
            out.append(Decision(s.rel, False, "review", review.exclude[s.rel]))
        elif s.rel in review.include and s.kind != "svg":
            out.append(Decision(s.rel, True, "review", review.include[s.rel]))
        else:
            keep, why = rule(s, svg_stems)
            out.append(Decision(s.rel, keep, "rule", why))
    known = {s.rel for s in stamps}
    for rel in sorted((set(review.include) | set(review.exclude)) - known):
        print(f"warning: review entry not among the stamps: {rel}", file=sys.stderr)
    for rel in sorted(r for r in review.include if r.lower().endswith(".svg")):
        print(f"warning: svg cannot be included (not rendered): {rel}", file=sys.stderr)
    return out


# --- labels and ids ---------------------------------------------------------------------
def clean_label(text: str) -> str:
    """Normalise a description line: NFC, single spaces, no trailing full stop."""
    t = " ".join(unicodedata.normalize("NFC", text).split())
    return t[:-1].rstrip() if t.endswith(".") and not t.endswith("..") else t


def read_label(stamp: Stamp) -> str:
    """The English description: the first non-empty line of the stamp's ``.txt``."""
    txt = stamp.path.with_suffix(".txt")
    if txt.is_file():
        for line in txt.read_text("utf-8-sig", "replace").splitlines():
            if line.strip():
                return clean_label(line)
    return clean_label(re.sub(r"[_\-]+", " ", stamp.stem))


def slug(text: str) -> str:
    ascii_ = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_.lower()).strip("-") or "x"


def make_ids(stamps: Iterable[Stamp]) -> dict[str, str]:
    """``rel -> id``: slug of category + stem; where that collides, of the whole folder path."""
    stamps = sorted(stamps, key=lambda s: s.rel)
    short = {s.rel: slug(f"{s.category} {s.stem}") for s in stamps}
    counts = Counter(short.values())
    ids: dict[str, str] = {}
    used: set[str] = set()
    for s in stamps:
        base = (
            short[s.rel]
            if counts[short[s.rel]] == 1
            else slug(" ".join(s.parts[:-1] + (s.stem,)))
        )
        cand, n = base, 2
        while cand in used:
            cand, n = f"{base}-{n}", n + 1
        used.add(cand)
        ids[s.rel] = cand
    return ids


# --- images -------------------------------------------------------------------------------
def render_thumbnail(path: Path, size: int, margin: float = MARGIN) -> Image.Image:
    """Stamp on white, cropped to its alpha box, centred on a square with a margin, resized."""
    im = load_rgba(path)
    white = Image.new("RGBA", im.size, (255, 255, 255, 255))
    white.alpha_composite(im)
    rgb = white.convert("RGB").crop(alpha_bbox(im) or (0, 0, *im.size))
    w, h = rgb.size
    side = math.ceil(max(w, h) / (1 - 2 * margin))
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(rgb, ((side - w) // 2, (side - h) // 2))
    return canvas.resize((size, size), Image.Resampling.LANCZOS)


def jpeg_bytes(im: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, optimize=True, progressive=False)
    return buf.getvalue()


# --- package facts and output files -----------------------------------------------------
def package_version(data_dir: Path, deb: Path | None = None, package: str = PACKAGE) -> str:
    """The package's version: from ``--deb`` (dpkg-deb -f), the extracted changelog (``usr/share/doc``
    two levels above ``data_dir``, e.g. ``usr/share/tuxpaint/stamps``), or dpkg."""
    if deb is not None:
        cmd = ["dpkg-deb", "-f", str(deb), "Version"]
        out = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    changelog = data_dir.parent.parent / "doc" / package / "changelog.Debian.gz"
    if changelog.is_file():
        with gzip.open(changelog, "rt", encoding="utf-8", errors="replace") as f:
            m = re.match(r"\S+ \(([^)]+)\)", f.readline())
        if m:
            return m.group(1)
    if shutil.which("dpkg-query"):
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package],
            check=False,
            capture_output=True,
            text=True,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    return "unknown"


def item_record(stamp: Stamp, item_id: str) -> dict[str, str | None]:
    return {
        "id": item_id,
        "file": f"photos/{item_id}.jpg",
        "label": read_label(stamp),
        "category": stamp.category,
        "subcategory": stamp.subcategory,
        "source_file": stamp.rel,
        "license": LICENSE,
        "package": PACKAGE,
    }


def extra_item_record(photo: gcompris.ExtraPhoto, credit: gcompris.Credit) -> dict[str, str | None]:
    return {
        "id": photo.id,
        "file": f"photos/{photo.id}.jpg",
        "label": photo.label,
        "category": photo.category,
        "subcategory": photo.subcategory,
        "source_file": f"{photo.rcc}:{photo.resource}",
        "license": credit.license,
        "package": gcompris.PACKAGE,
        "author": credit.author,
        "url": credit.url,
    }


def extra_attribution_text(version: str, items: Sequence[dict[str, str | None]]) -> str:
    """The second section of ATTRIBUTION.md: one line per GCompris photograph."""
    lines = [
        "",
        f"## Photographs from `{gcompris.PACKAGE}` (version `{version}`)",
        "",
        f"{len(items)} photographs (ids `gcompris-*`) come from the Debian package `{gcompris.PACKAGE}`",
        "(GCompris, <https://gcompris.net/>; its activities' images are Wikimedia Commons photographs,",
        "each credited in the `README` beside it inside the package's Qt resource files). Each keeps",
        "its own licence, listed below with its author and source; changes: cropped to a square,",
        "resized, saved as JPEG. The thumbnails of CC-BY-SA-4.0 photographs are shared under",
        "CC-BY-SA-4.0 (<https://creativecommons.org/licenses/by-sa/4.0/>); CC-BY licences:",
        "<https://creativecommons.org/licenses/>; CC0-1.0 and public-domain photos carry no conditions.",
        "",
        "| photo | label | author | licence | source |",
        "|---|---|---|---|---|",
    ]
    for it in items:
        lines.append(f"| `{it['id']}` | {it['label']} | {it['author']} | {it['license']} | <{it['url']}> |")
    lines += [
        "",
        "Rebuild (adds these to the Tux Paint photographs; the list is `training/gallery_extra.json`):",
        "",
        "```sh",
        f"(cd /tmp && apt-get download {gcompris.PACKAGE})",
        f"dpkg -x /tmp/{gcompris.PACKAGE}_*.deb /tmp/gcompris",
        "python training/build_gallery.py --gcompris /tmp/gcompris/usr/share/gcompris-qt/rcc",
        "```",
        "",
    ]
    return "\n".join(lines)


def attribution_text(version: str, n_items: int, with_copying: bool) -> str:
    copying = (
        "The full licence text is in `COPYING` beside this file."
        if with_copying
        else "The full licence text: <https://www.gnu.org/licenses/old-licenses/gpl-2.0.txt>."
    )
    return f"""# Gallery attribution

The {n_items} photographs in `photos/` are derived from the stamp images of the Debian package
`{PACKAGE}`, version `{version}` (source package `tuxpaint-stamps`), part of
Tux Paint, by Bill Kendrick / New Breed Software and the Tux Paint contributors
(<https://tuxpaint.org/>). `metadata.json` names the source file of each photograph.
Each was composited on white, cropped, centred on a square, resized and saved as JPEG.

## Licence: GPL-2.0 (GNU General Public License, version 2 or later)

Copyright 2002-2022 Bill Kendrick <bill@newbreedsoftware.com> and the Tux Paint contributors.

This package is free software; you can redistribute it and/or modify
it under the terms of the GNU General Public License as published by
the Free Software Foundation; either version 2 of the License, or
(at your option) any later version.

This package is distributed in the hope that it will be useful,
but WITHOUT ANY WARRANTY; without even the implied warranty of
MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
GNU General Public License for more details.

{copying}

## Rebuilding

The source images are the package's own files. From the repository root:

```sh
apt-get update
(cd /tmp && apt-get download {PACKAGE})
dpkg -x /tmp/{PACKAGE}_*.deb /tmp/tuxstamps
python training/build_gallery.py --stamps /tmp/tuxstamps/usr/share/tuxpaint/stamps --out gallery
```

Which stamps are kept is decided by the rule in `training/build_gallery.py` and the reviewed
overrides in `training/gallery_review.json`.
"""


def write_if_changed(path: Path, data: bytes) -> None:
    if not path.is_file() or path.read_bytes() != data:
        path.write_bytes(data)


def build(
    stamps_dir: Path,
    out: Path,
    review: Review,
    size: int = 256,
    quality: int = 85,
    deb: Path | None = None,
    extra: Sequence[gcompris.ExtraPhoto] = (),
    rcc_dir: Path | None = None,
) -> tuple[list[Decision], list[dict[str, str | None]]]:
    """Decide, render and write the gallery (the stamps, then the ``extra`` photos read from
    ``rcc_dir``); returns the decisions on the stamps and every metadata item."""
    stamps = find_stamps(stamps_dir)
    decisions = decide(stamps, review)
    ids = make_ids(s for s in stamps if s.kind == "png")
    by_rel = {s.rel: s for s in stamps}
    kept = [by_rel[d.rel] for d in decisions if d.keep]

    photos = out / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    items = []
    for s in kept:
        item = item_record(s, ids[s.rel])
        write_if_changed(
            out / item["file"], jpeg_bytes(render_thumbnail(s.path, size), quality)
        )
        items.append(item)
    n_stamps = len(items)
    extra_items: list[dict[str, str | None]] = []
    if extra:
        if rcc_dir is None:
            raise FileNotFoundError(f"{gcompris.PACKAGE}: no rcc folder given for {len(extra)} reviewed photos")
        for photo, data, credit in gcompris.collect(rcc_dir, list(extra)):
            item = extra_item_record(photo, credit)
            write_if_changed(out / str(item["file"]), jpeg_bytes(gcompris.render_photo(data, size, photo.crop), quality))
            extra_items.append(item)
    clash = sorted({str(it["id"]) for it in items} & {str(it["id"]) for it in extra_items})
    if clash:
        raise ValueError(f"ids used by both sources: {clash}")
    items += extra_items
    items.sort(key=lambda it: it["id"] or "")
    wanted = {Path(it["file"]).name for it in items}
    for old in sorted(photos.glob("*.jpg")):
        if old.name not in wanted:
            old.unlink()

    version = package_version(stamps_dir, deb)
    sources = [{"package": PACKAGE, "version": version, "license": LICENSE}]
    extra_version = ""
    if extra_items:
        assert rcc_dir is not None
        extra_version = package_version(rcc_dir, None, gcompris.PACKAGE)
        sources.append({"package": gcompris.PACKAGE, "version": extra_version, "license": "per photo (items)"})
    meta = {"sources": sources, "items": items}
    text = json.dumps(meta, indent=1, ensure_ascii=False, sort_keys=False) + "\n"
    write_if_changed(out / "metadata.json", text.encode("utf-8"))
    with_copying = GPL2_TEXT.is_file()
    if with_copying:
        write_if_changed(out / "COPYING", GPL2_TEXT.read_bytes())
    attribution = attribution_text(version, n_stamps, with_copying)
    if extra_items:
        attribution += extra_attribution_text(extra_version, sorted(extra_items, key=lambda it: str(it["id"])))
    write_if_changed(out / "ATTRIBUTION.md", attribution.encode("utf-8"))
    return decisions, items


def summary(
    decisions: Sequence[Decision], items: Sequence[dict[str, str | None]], out: Path
) -> str:
    kept_by = Counter(d.by for d in decisions if d.keep)
    dropped_by = Counter(d.by for d in decisions if not d.keep)
    rule_reasons = Counter(
        d.reason.split(":")[0] for d in decisions if not d.keep and d.by == "rule"
    )
    per_cat = Counter(str(it["category"]) for it in items)
    per_pkg = Counter(str(it.get("package")) for it in items)
    size = sum(p.stat().st_size for p in (out / "photos").glob("*.jpg"))
    lines = [
        f"stamps: {len(decisions)}  kept: {len(items)} (rule {kept_by['rule']}, "
        + f"review include {kept_by['review']})",
        f"dropped by rule: {dropped_by['rule']}  dropped by review: {dropped_by['review']}",
        "rule drops: " + ", ".join(f"{k} {v}" for k, v in sorted(rule_reasons.items())),
        "per category: " + ", ".join(f"{k} {v}" for k, v in sorted(per_cat.items())),
        "per package: " + ", ".join(f"{k} {v}" for k, v in sorted(per_pkg.items())),
        f"photos: {size / 1e6:.2f} MB in {out / 'photos'}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--stamps",
        type=Path,
        default=None,
        help="extracted usr/share/tuxpaint/stamps (default: "
        + " or ".join(str(d) for d in DEFAULT_STAMP_DIRS)
        + ")",
    )
    ap.add_argument("--out", type=Path, default=REPO / "gallery", help="gallery folder")
    ap.add_argument(
        "--size", type=int, default=256, help="side of the square thumbnails"
    )
    ap.add_argument("--quality", type=int, default=85, help="JPEG quality")
    ap.add_argument(
        "--review",
        type=Path,
        default=REPO / "training" / "gallery_review.json",
        help="reviewed include/exclude overrides (JSON)",
    )
    ap.add_argument(
        "--deb",
        type=Path,
        default=None,
        help="the .deb, to read the version with dpkg-deb -f (default: changelog)",
    )
    ap.add_argument(
        "--extra",
        type=Path,
        default=REPO / "training" / "gallery_extra.json",
        help=f"reviewed photographs from {gcompris.PACKAGE} to add (JSON)",
    )
    ap.add_argument(
        "--gcompris",
        type=Path,
        default=None,
        help="extracted usr/share/gcompris-qt/rcc (default: "
        + " or ".join(str(d) for d in gcompris.DEFAULT_RCC_DIRS)
        + ")",
    )
    ap.add_argument(
        "--no-extra", action="store_true", help="the Tux Paint photographs only"
    )
    args = ap.parse_args(argv)

    stamps_dir = args.stamps or default_stamps_dir()
    if stamps_dir is None or not stamps_dir.is_dir():
        ap.error(
            f"stamps folder not found: {stamps_dir or ' / '.join(map(str, DEFAULT_STAMP_DIRS))}"
        )
    extra = [] if args.no_extra else gcompris.load_extra(args.extra)
    rcc_dir = args.gcompris or gcompris.default_rcc_dir()
    if extra and (rcc_dir is None or not rcc_dir.is_dir()):
        ap.error(
            f"{gcompris.PACKAGE} rcc folder not found: {rcc_dir or ' / '.join(map(str, gcompris.DEFAULT_RCC_DIRS))}"
            + " (extract the package, see training/gcompris.py, or pass --no-extra)"
        )
    decisions, items = build(
        stamps_dir,
        args.out,
        load_review(args.review),
        args.size,
        args.quality,
        args.deb,
        extra,
        rcc_dir,
    )
    print(summary(decisions, items, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
