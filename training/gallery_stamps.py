"""Which Tux Paint stamps are photographs, and how each becomes a gallery thumbnail.

A rule (file type, folder, ``.dat`` flags, object size and colour statistics: cartoons are drawn in
few flat colours) decides first; the reviewed list ``training/gallery_review.json`` overrides it.
Labels come from each stamp's ``.txt``; ids are slugs of category and file name. Used by
``training/build_gallery.py``.
"""

from __future__ import annotations

import io
import json
import math
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

PACKAGE = "tuxpaint-stamps-default"
LICENSE = "GPL-2.0"
DEFAULT_STAMP_DIRS = (
    Path("/tmp/tuxstamps/usr/share/tuxpaint/stamps"),
    Path("/usr/share/tuxpaint/stamps"),
)

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
