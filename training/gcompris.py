"""Photographs from Debian's ``gcompris-qt-data`` for the default gallery (used by build_gallery.py).

Tux Paint's stamps have no house cat and few farm animals. GCompris' activities ship real
photographs of animals (Wikimedia Commons photos, each credited with author, licence and source
URL in a ``README`` beside it: public domain, CC0, CC-BY or CC-BY-SA). They sit inside Qt
resource files (``usr/share/gcompris-qt/rcc/<activity>.rcc``), read here with a small parser of
the documented rcc layout. Which photos are taken, their labels, gallery folders and crops are a
reviewed list, ``training/gallery_extra.json``.

Get the files without installing the package::

    (cd /tmp && apt-get download gcompris-qt-data)
    dpkg -x /tmp/gcompris-qt-data_*.deb /tmp/gcompris
"""

from __future__ import annotations

import io
import json
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

PACKAGE = "gcompris-qt-data"
DEFAULT_RCC_DIRS = (Path("/tmp/gcompris/usr/share/gcompris-qt/rcc"), Path("/usr/share/gcompris-qt/rcc"))
_COMPRESSED, _DIRECTORY, _ZSTD = 0x1, 0x2, 0x4  # rcc tree-entry flags
# spellings in the READMEs -> SPDX ids (public domain has none: "public-domain", as Debian writes it)
_LICENSES = {"cc-by-sa 4.0": "CC-BY-SA-4.0", "cc-by-sa-4.0": "CC-BY-SA-4.0", "cc-by-2.0": "CC-BY-2.0",
             "cc-by-3.0": "CC-BY-3.0", "cc0-1.0": "CC0-1.0", "public domain": "public-domain", "gplv3": "GPL-3.0"}


class RccError(ValueError):
    """A file that is not a Qt resource file this parser understands."""


def read_rcc(path: str | Path) -> dict[str, bytes]:
    """Every file in a Qt resource (``.rcc``, format versions 1-3) as ``{"/a/b.webp": bytes}``.

    Layout (qt/src/tools/rcc): header ``qres``, version, then offsets of the tree, the data and
    the names; tree entries of 14 bytes (v1) or 22 (v2+, with a modification time); zlib entries
    carry a 4-byte uncompressed size before the stream."""
    b = Path(path).read_bytes()
    if len(b) < 20 or b[:4] != b"qres":
        raise RccError(f"{path}: not a Qt resource file (no 'qres' header)")
    version, tree, data, names = struct.unpack(">IIII", b[4:20])
    if version not in (1, 2, 3):
        raise RccError(f"{path}: rcc format version {version} is not supported")
    size = 14 if version == 1 else 22

    def name(off: int) -> str:
        (n,) = struct.unpack(">H", b[names + off : names + off + 2])
        start = names + off + 6  # length, then a 4-byte hash, then UTF-16BE
        return b[start : start + 2 * n].decode("utf-16-be")

    out: dict[str, bytes] = {}
    stack = [(0, "")]
    while stack:
        i, prefix = stack.pop()
        o = tree + i * size
        name_off, flags = struct.unpack(">IH", b[o : o + 6])
        nm = name(name_off) if i else ""
        if flags & _DIRECTORY:
            count, first = struct.unpack(">II", b[o + 6 : o + 14])
            stack += [(c, f"{prefix}{nm}/") for c in range(first, first + count)]
            continue
        (off,) = struct.unpack(">I", b[o + 10 : o + 14])
        (n,) = struct.unpack(">I", b[data + off : data + off + 4])
        blob = b[data + off + 4 : data + off + 4 + n]
        if flags & _ZSTD:
            raise RccError(f"{path}: {prefix}{nm} is zstd-compressed (not supported)")
        out[prefix + nm] = zlib.decompress(blob[4:]) if flags & _COMPRESSED else blob
    return out


@dataclass(frozen=True)
class Credit:
    """Author, licence (SPDX id or ``public-domain``) and source URL of one file."""

    author: str
    license: str
    url: str | None


def parse_credits(text: str) -> dict[str, Credit]:
    """The per-file credits of a GCompris resource ``README``: blank-line separated blocks of
    ``Copyright:``, ``License:``, ``Source:`` and ``Files:`` (one line, or one file per line)."""
    out: dict[str, Credit] = {}
    for block in re.split(r"\n\s*\n", text.replace("\r", "")):
        fields: dict[str, list[str]] = {}
        key = None
        for line in block.splitlines():
            m = re.match(r"^(Copyright|License|Source|Files|Comments)\s*:\s*(.*)$", line.strip())
            if m:
                key = m.group(1).lower()
                fields[key] = [m.group(2)] if m.group(2) else []
            elif key and line.strip():
                fields[key].append(line.strip())
        if "files" not in fields or "license" not in fields:
            continue
        lic = " ".join(fields["license"]).strip()
        credit = Credit(" ".join(fields.get("copyright", [])).strip(), _LICENSES.get(lic.lower(), lic),
                        " ".join(fields.get("source", [])).strip() or None)
        for f in re.split(r"[\s,]+", " ".join(fields["files"])):
            if f:
                out[f] = credit
    return out


@dataclass(frozen=True)
class ExtraPhoto:
    """One reviewed photo: where it is, how it is labelled and filed, and which square to keep.

    ``crop`` = (centre x, centre y) as fractions of the width / height and the side as a fraction
    of the short side; the default keeps the centred square."""

    rcc: str
    resource: str
    id: str
    label: str
    category: str
    subcategory: str | None
    crop: tuple[float, float, float] = (0.5, 0.5, 1.0)
    kind: str | None = None  # the object's name where no folder says it (``chair``, ``cup``)


def load_extra(path: str | Path) -> list[ExtraPhoto]:
    """Read the reviewed list (``{"items": [{"rcc", "resource", "id", "label", "category", ...}]}``)."""
    data = json.loads(Path(path).read_text("utf-8"))
    out = []
    for e in data.get("items", []):
        missing = [k for k in ("rcc", "resource", "id", "label", "category") if not e.get(k)]
        if missing:
            raise ValueError(f"{path}: entry {e!r} lacks {missing}")
        crop = tuple(float(v) for v in e.get("crop", (0.5, 0.5, 1.0)))
        if len(crop) != 3 or not (0 < crop[2] <= 1) or not all(0 <= v <= 1 for v in crop[:2]):
            raise ValueError(f"{path}: {e['id']}: crop must be [centre x, centre y, side] in (0, 1], got {crop}")
        out.append(ExtraPhoto(e["rcc"], e["resource"], e["id"], e["label"], e["category"], e.get("subcategory"), crop,
                              e.get("kind")))
    ids = [p.id for p in out]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate ids")
    return out


def square_crop(im: Image.Image, crop: tuple[float, float, float]) -> Image.Image:
    """The square of side ``crop[2] * short side`` centred at ``crop[:2]``, shifted to stay inside."""
    w, h = im.size
    side = max(1, round(crop[2] * min(w, h)))
    x0 = min(max(0, round(crop[0] * w - side / 2)), w - side)
    y0 = min(max(0, round(crop[1] * h - side / 2)), h - side)
    return im.crop((x0, y0, x0 + side, y0 + side))


def render_photo(data: bytes, size: int, crop: tuple[float, float, float]) -> Image.Image:
    """A full-frame photograph (any PIL format) -> RGB ``size`` x ``size`` square, no padding:
    a white border would put a frame into the photo's edge map."""
    with Image.open(io.BytesIO(data)) as im:
        rgb = im.convert("RGB")
    return square_crop(rgb, crop).resize((size, size), Image.Resampling.LANCZOS)


def default_rcc_dir() -> Path | None:
    return next((d for d in DEFAULT_RCC_DIRS if d.is_dir()), None)


def collect(rcc_dir: Path, photos: list[ExtraPhoto]) -> list[tuple[ExtraPhoto, bytes, Credit]]:
    """Each reviewed photo's bytes and credit (from the ``README`` in its resource folder)."""
    cache: dict[str, dict[str, bytes]] = {}
    out = []
    for p in photos:
        f = rcc_dir / p.rcc
        if not f.is_file():
            raise FileNotFoundError(f"{f}: missing (extract {PACKAGE}; see training/gcompris.py)")
        files = cache.setdefault(p.rcc, read_rcc(f))
        if p.resource not in files:
            raise KeyError(f"{p.rcc}: no {p.resource}")
        readme = p.resource.rsplit("/", 1)[0] + "/README"
        credits = parse_credits(files[readme].decode("utf-8", "replace")) if readme in files else {}
        name = p.resource.rsplit("/", 1)[1]
        if name not in credits:
            raise KeyError(f"{p.rcc}: {readme} does not credit {name}: not taken (licence unknown)")
        out.append((p, files[p.resource], credits[name]))
    return out
