"""Upload safety: the user's photos and .zip files are checked, size-limited and copied under fresh
flat names; a zip member is never extracted by its own path. Every limit is checked before the work it
guards: a zip's entry count and directory size from its end record before the directory is parsed, the
declared uncompressed sizes before anything is extracted, each image's dimensions from its header before
it is decoded, and the pixels an upload decodes in total before each decode. A photo larger than
``STORE_SIDE`` is decoded reduced and kept reduced, so indexing and thumbnails never decode it again."""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from sketchdown.sketch.imageio import IMAGE_EXTS, Decoded, ImageError, read_image

# uploads: per request, and per file/total after unpacking
MAX_UPLOAD_FILES = 200
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_TOTAL_BYTES = 100 * 1024 * 1024
MAX_ZIP_ENTRIES = 5000  # a zip listing more entries than this is refused outright, before its directory is read
MAX_ZIP_DIRECTORY = 4 * 2**20  # bytes of a zip's central directory (~800 B per entry at MAX_ZIP_ENTRIES)
# pixels decoded per upload: ~50 images at the 40-megapixel cap (PNG decodes in full, ~0.4 s each), or
# ~600 12-megapixel JPEGs (decoded at 1/2-1/4 scale); bounds one upload's decoding to ~20 s of one core
MAX_UPLOAD_PIXELS = 2_000_000_000
STORE_SIDE = 1024  # px, longer side a larger photo is kept at: 4x what edge detection uses (256), 2.7x a thumbnail


class UploadError(ValueError):
    """A rejected upload; one line for the user."""


def _safe_name(name: str) -> str | None:
    """Base name of a zip member, or None for absolute paths and paths with '..'."""
    n = name.replace("\\", "/")
    if n.startswith("/") or re.match(r"^[A-Za-z]:", n):
        return None
    parts = [p for p in n.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        return None
    return parts[-1]


def _mb(n: int) -> int:
    return n // 2**20


@dataclass
class _Collector:
    """Checks and writes one upload's images into ``dest``; ``saved``/``notes`` are the results."""

    dest: Path
    max_files: int
    max_file_bytes: int
    max_total_bytes: int
    max_pixels: int = MAX_UPLOAD_PIXELS
    saved: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    total: int = 0
    pixels: int = 0

    def too_big(self, name: str, size: int) -> bool:
        """Note and skip a file over the per-file limit."""
        if size > self.max_file_bytes:
            self.notes.append(f"{name}: larger than {_mb(self.max_file_bytes)} MB, skipped")
            return True
        return False

    def add(self, name: str, data: bytes) -> None:
        """Save ``data`` as ``name`` (sanitised, made unique) when it decodes as an image."""
        if len(self.saved) >= self.max_files:
            raise UploadError(f"too many photos: at most {self.max_files} per upload")
        if self.too_big(name, len(data)):
            return
        self.total += len(data)
        if self.total > self.max_total_bytes:
            raise UploadError(f"upload too large: more than {_mb(self.max_total_bytes)} MB of photos in total")
        try:
            img = read_image(data, name=name, max_side=STORE_SIDE, before_decode=self.charge)
        except ImageError as e:
            self.notes.append(f"{e}, skipped")
            return
        stem = re.sub(r"[^\w.-]+", "_", Path(name).stem)[:60].strip("._") or "photo"
        suffix = Path(name).suffix.lower()
        out, n = self.dest / f"{stem}{suffix}", 1
        while out.exists():  # flat names: the same name in two folders of a zip gets a suffix
            n += 1
            out = self.dest / f"{stem}-{n}{suffix}"
        out.write_bytes(data if max(img.size) <= STORE_SIDE else _reencoded(img))
        self.saved.append(out)

    def charge(self, pixels: int) -> None:
        """Count an image's decoded pixels against the upload's budget, before it is decoded."""
        self.pixels += pixels
        if self.pixels > self.max_pixels:
            raise UploadError(f"upload too large: its photos hold more than {self.max_pixels // 10**6:,} megapixels in "
                              "total; send fewer or smaller photos")

    def add_file(self, p: Path) -> None:
        """A plain uploaded image file."""
        try:
            size = p.stat().st_size
        except OSError:
            self.notes.append(f"{p.name}: could not be read, skipped")
            return
        if not self.too_big(p.name, size):
            self.add(p.name, p.read_bytes())


def _reencoded(img: Decoded) -> bytes:
    """A decoded-reduced photo as the file kept for indexing: longer side ``STORE_SIDE``, the original format
    (JPEG for anything but PNG/WebP/BMP) and EXIF block (so its orientation still applies)."""
    im = img.image.copy()
    im.thumbnail((STORE_SIDE, STORE_SIDE), Image.Resampling.LANCZOS)
    fmt = {"PNG": "PNG", "WEBP": "WEBP", "BMP": "BMP"}.get(img.format or "", "JPEG")
    extra: dict = {"quality": 92} if fmt in ("JPEG", "WEBP") else {}
    if img.exif and fmt != "BMP":
        extra["exif"] = img.exif
    buf = io.BytesIO()
    im.save(buf, fmt, **extra)
    return buf.getvalue()


def collect_uploads(paths: list[str | Path], dest: Path, *, max_files: int = MAX_UPLOAD_FILES,
                    max_file_bytes: int = MAX_FILE_BYTES, max_total_bytes: int = MAX_TOTAL_BYTES,
                    max_pixels: int = MAX_UPLOAD_PIXELS) -> tuple[list[Path], list[str]]:
    """Copy uploaded images (and the images inside uploaded .zip files) into ``dest`` under fresh flat
    names, after checking each decodes as an image (photos with a longer side over ``STORE_SIDE`` px are kept
    reduced to it). Never extracts a zip member by its own path. ``max_pixels``: pixels decoded in total.

    Returns (saved files, notes about skipped entries); raises :class:`UploadError` for uploads over the
    limits or without any usable image."""
    dest.mkdir(parents=True, exist_ok=True)
    c = _Collector(dest, max_files, max_file_bytes, max_total_bytes, max_pixels)
    paths = [Path(p) for p in paths if p]
    plain = [p for p in paths if not p.name.lower().endswith(".zip")]
    if len(plain) > max_files:
        raise UploadError(f"too many photos: {len(plain)} files, at most {max_files} per upload")
    for p in paths:
        name = p.name.lower()
        if name.endswith(".zip"):
            _add_zip(p, c)
        elif name.endswith(IMAGE_EXTS):
            c.add_file(p)
        else:
            c.notes.append(f"{p.name}: not an image (jpg/png/webp/bmp) or .zip, skipped")
    if not c.saved:
        notes = c.notes
        raise UploadError("no usable photos in the upload" + (f" ({notes[0]}{' …' if len(notes) > 1 else ''})" if notes else ""))
    return c.saved, c.notes


def _zip_images(zf: zipfile.ZipFile, zname: str, notes: list[str]) -> list[tuple[zipfile.ZipInfo, str]]:
    """The image members of a zip with their safe base names; unsafe and non-image entries are noted."""
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if len(infos) > MAX_ZIP_ENTRIES:
        raise UploadError(f"{zname}: too many entries ({len(infos):,}; at most {MAX_ZIP_ENTRIES:,})")
    images = []
    for info in infos:
        base = _safe_name(info.filename)
        if base is None:
            notes.append(f"{zname}: unsafe path {info.filename!r}, skipped")
            continue
        if base.startswith(".") or "__MACOSX" in info.filename:
            continue
        if not base.lower().endswith(IMAGE_EXTS):
            notes.append(f"{base}: not an image, skipped")
            continue
        images.append((info, base))
    return images


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, base: str, c: _Collector) -> bytes | None:
    """A member's bytes (at most the per-file limit + 1), or None with a note when it cannot be used."""
    if c.too_big(base, info.file_size):
        return None
    if info.flag_bits & 0x1:
        c.notes.append(f"{base}: encrypted, skipped")
        return None
    try:
        with zf.open(info) as f:
            return f.read(c.max_file_bytes + 1)  # the header's size may lie: never read more than the limit
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, OSError, EOFError) as e:
        c.notes.append(f"{base}: could not be unpacked ({type(e).__name__}), skipped")
        return None


def _zip_end_record(path: Path) -> tuple[int, int] | None:
    """(entries, central directory bytes) from a zip's end record, read without parsing the directory (which
    would hold every entry in memory); None when there is no end record (zipfile then calls it unreadable)."""
    reader = getattr(zipfile, "_EndRecData", None)  # private, but unchanged since Python 2; zip64-aware
    if reader is None:
        return None
    try:
        with path.open("rb") as f:
            end = reader(f)
    except (OSError, zipfile.BadZipFile, ValueError):
        return None
    return (int(end[zipfile._ECD_ENTRIES_TOTAL]), int(end[zipfile._ECD_SIZE])) if end else None


def _add_zip(path: Path, c: _Collector) -> None:
    """Every usable image of one zip, after the count and uncompressed-size limits are checked up front."""
    end = _zip_end_record(path)
    if end is not None and end[0] > MAX_ZIP_ENTRIES:
        raise UploadError(f"{path.name}: too many entries ({end[0]:,}; at most {MAX_ZIP_ENTRIES:,})")
    if end is not None and end[1] > MAX_ZIP_DIRECTORY:
        raise UploadError(f"{path.name}: its list of entries is too large ({end[1] / 2**20:.1f} MB; at most "
                          f"{_mb(MAX_ZIP_DIRECTORY)} MB)")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        c.notes.append(f"{path.name}: not a readable zip ({type(e).__name__}), skipped")
        return
    with zf:
        images = _zip_images(zf, path.name, c.notes)
        if len(c.saved) + len(images) > c.max_files:
            raise UploadError(f"too many photos: {path.name} holds {len(images)}, at most {c.max_files} per upload")
        if sum(i.file_size for i, _ in images) > c.max_total_bytes:
            raise UploadError(f"{path.name}: more than {_mb(c.max_total_bytes)} MB of photos uncompressed")
        for info, base in images:
            data = _read_member(zf, info, base, c)
            if data is not None:
                c.add(base, data)
