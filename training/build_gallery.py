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

Last it adds the reviewed clip art of ``training/gallery_clipart.json`` (furniture, of which the
packages hold one photograph; see ``training/gallery_clipart.py``)::

    (cd /tmp && apt-get download ulcc openclipart-png)
    for p in ulcc openclipart-png; do dpkg -x /tmp/${p}_*.deb /tmp/clipart/$p; done

The output is deterministic: the same input gives byte-identical files. The stamp rule and
thumbnails live in ``training/gallery_stamps.py``, the metadata and attribution text in
``training/gallery_files.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script (python training/build_gallery.py): put the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training import gallery_clipart, gcompris
from training.gallery_files import (
    attribution_text,
    extra_attribution_text,
    extra_item_record,
    item_record,
    package_version,
    write_if_changed,
)
from training.gallery_stamps import (
    DEFAULT_STAMP_DIRS,
    LICENSE,
    PACKAGE,
    Decision,
    Review,
    Stamp,
    clean_label,
    decide,
    default_stamps_dir,
    find_stamps,
    jpeg_bytes,
    load_review,
    make_ids,
    render_thumbnail,
)

__all__ = [
    "LICENSE", "PACKAGE", "REPO", "Decision", "Review", "Stamp", "build", "clean_label", "decide",
    "find_stamps", "load_review", "main", "make_ids", "summary",
]

REPO = Path(__file__).resolve().parents[1]
GPL2_TEXT = Path("/usr/share/common-licenses/GPL-2")

Item = dict[str, str | None]
Clipart = tuple[dict[str, str], list[gallery_clipart.ClipArt]]  # (package -> version, drawings)


def _write_stamps(stamps: Sequence[Stamp], decisions: Sequence[Decision], out: Path, size: int, quality: int) -> list[Item]:
    """Render the kept stamps into ``out/photos``; one metadata item each, in decision order."""
    ids = make_ids(s for s in stamps if s.kind == "png")
    by_rel = {s.rel: s for s in stamps}
    items = []
    for d in decisions:
        if d.keep:
            s = by_rel[d.rel]
            item = item_record(s, ids[s.rel])
            write_if_changed(out / str(item["file"]), jpeg_bytes(render_thumbnail(s.path, size), quality))
            items.append(item)
    return items


def _write_extra(extra: Sequence[gcompris.ExtraPhoto], rcc_dir: Path | None, out: Path, size: int, quality: int) -> list[Item]:
    """Render the reviewed GCompris photos read from ``rcc_dir`` into ``out/photos``."""
    if not extra:
        return []
    if rcc_dir is None:
        raise FileNotFoundError(f"{gcompris.PACKAGE}: no rcc folder given for {len(extra)} reviewed photos")
    items = []
    for photo, data, credit in gcompris.collect(rcc_dir, list(extra)):
        item = extra_item_record(photo, credit)
        write_if_changed(out / str(item["file"]), jpeg_bytes(gcompris.render_photo(data, size, photo.crop), quality))
        items.append(item)
    return items


def _write_clipart(clipart: Clipart, root: Path, out: Path, size: int, quality: int) -> list[Item]:
    """Render the reviewed drawings (extracted under ``root``) into ``out/photos``."""
    items = []
    for art in clipart[1]:
        item = gallery_clipart.item_record(art)
        thumb = render_thumbnail(gallery_clipart.source_path(root, art), size)
        write_if_changed(out / str(item["file"]), jpeg_bytes(thumb, quality))
        items.append(item)
    return items


def _write_texts(out: Path, items: Sequence[Item], n_stamps: int, stamps_dir: Path, deb: Path | None,
                 extra_items: Sequence[Item], rcc_dir: Path | None, clipart: Clipart,
                 clip_items: Sequence[Item]) -> None:
    """``metadata.json``, ``COPYING`` (when the system has the GPL-2 text) and ``ATTRIBUTION.md``."""
    version = package_version(stamps_dir, deb)
    sources = [{"package": PACKAGE, "version": version, "license": LICENSE}]
    extra_version = ""
    if extra_items:
        assert rcc_dir is not None
        extra_version = package_version(rcc_dir, None, gcompris.PACKAGE)
        sources.append({"package": gcompris.PACKAGE, "version": extra_version, "license": "per photo (items)"})
    if clip_items:
        used = sorted({str(it["package"]) for it in clip_items})
        sources += [{"package": p, "version": clipart[0][p], "license": "per image (items)"} for p in used]
    meta = {"sources": sources, "items": list(items)}
    text = json.dumps(meta, indent=1, ensure_ascii=False, sort_keys=False) + "\n"
    write_if_changed(out / "metadata.json", text.encode("utf-8"))
    with_copying = GPL2_TEXT.is_file()
    if with_copying:
        write_if_changed(out / "COPYING", GPL2_TEXT.read_bytes())
    attribution = attribution_text(version, n_stamps, with_copying)
    if extra_items:
        attribution += extra_attribution_text(extra_version, sorted(extra_items, key=lambda it: str(it["id"])))
    if clip_items:
        attribution += gallery_clipart.attribution_text(clipart[0], sorted(clip_items, key=lambda it: str(it["id"])))
    write_if_changed(out / "ATTRIBUTION.md", attribution.encode("utf-8"))


def build(
    stamps_dir: Path,
    out: Path,
    review: Review,
    size: int = 256,
    quality: int = 85,
    deb: Path | None = None,
    extra: Sequence[gcompris.ExtraPhoto] = (),
    rcc_dir: Path | None = None,
    clipart: Clipart = ({}, []),
    clipart_root: Path = gallery_clipart.DEFAULT_ROOT,
) -> tuple[list[Decision], list[Item]]:
    """Decide, render and write the gallery (the stamps, then the ``extra`` photos read from
    ``rcc_dir``, then the ``clipart`` read under ``clipart_root``); returns the decisions on the
    stamps and every metadata item, sorted by id."""
    stamps = find_stamps(stamps_dir)
    decisions = decide(stamps, review)
    photos = out / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    items = _write_stamps(stamps, decisions, out, size, quality)
    n_stamps = len(items)
    extra_items = _write_extra(extra, rcc_dir, out, size, quality)
    clip_items = _write_clipart(clipart, clipart_root, out, size, quality)
    ids = Counter(str(it["id"]) for it in [*items, *extra_items, *clip_items])
    clash = sorted(i for i, n in ids.items() if n > 1)
    if clash:
        raise ValueError(f"ids used by two sources: {clash}")
    items += extra_items + clip_items
    items.sort(key=lambda it: it["id"] or "")
    wanted = {Path(str(it["file"])).name for it in items}
    for old in sorted(photos.glob("*.jpg")):  # photos no longer kept
        if old.name not in wanted:
            old.unlink()
    _write_texts(out, items, n_stamps, stamps_dir, deb, extra_items, rcc_dir, clipart, clip_items)
    return decisions, items


def summary(decisions: Sequence[Decision], items: Sequence[Item], out: Path) -> str:
    """A few lines for the terminal: kept and dropped counts by reason, category and package."""
    kept_by = Counter(d.by for d in decisions if d.keep)
    dropped_by = Counter(d.by for d in decisions if not d.keep)
    rule_reasons = Counter(d.reason.split(":")[0] for d in decisions if not d.keep and d.by == "rule")
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


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--stamps",
        type=Path,
        default=None,
        help="extracted usr/share/tuxpaint/stamps (default: " + " or ".join(str(d) for d in DEFAULT_STAMP_DIRS) + ")",
    )
    ap.add_argument("--out", type=Path, default=REPO / "gallery", help="gallery folder")
    ap.add_argument("--size", type=int, default=256, help="side of the square thumbnails")
    ap.add_argument("--quality", type=int, default=85, help="JPEG quality")
    ap.add_argument(
        "--review",
        type=Path,
        default=REPO / "training" / "gallery_review.json",
        help="reviewed include/exclude overrides (JSON)",
    )
    ap.add_argument("--deb", type=Path, default=None, help="the .deb, to read the version with dpkg-deb -f (default: changelog)")
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
        help="extracted usr/share/gcompris-qt/rcc (default: " + " or ".join(str(d) for d in gcompris.DEFAULT_RCC_DIRS) + ")",
    )
    ap.add_argument("--no-extra", action="store_true", help="the Tux Paint photographs only")
    ap.add_argument("--clipart", type=Path, default=REPO / "training" / "gallery_clipart.json",
                    help="reviewed clip art to add (JSON)")
    ap.add_argument("--clipart-root", type=Path, default=gallery_clipart.DEFAULT_ROOT,
                    help="folder holding each clip-art package extracted as <root>/<package>")
    ap.add_argument("--no-clipart", action="store_true", help="no clip art")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Build the gallery from the command line (``--help`` lists the options); prints a summary."""
    ap = _parser()
    args = ap.parse_args(argv)
    stamps_dir = args.stamps or default_stamps_dir()
    if stamps_dir is None or not stamps_dir.is_dir():
        ap.error(f"stamps folder not found: {stamps_dir or ' / '.join(map(str, DEFAULT_STAMP_DIRS))}")
    extra = [] if args.no_extra else gcompris.load_extra(args.extra)
    rcc_dir = args.gcompris or gcompris.default_rcc_dir()
    if extra and (rcc_dir is None or not rcc_dir.is_dir()):
        ap.error(
            f"{gcompris.PACKAGE} rcc folder not found: {rcc_dir or ' / '.join(map(str, gcompris.DEFAULT_RCC_DIRS))}"
            + " (extract the package, see training/gcompris.py, or pass --no-extra)"
        )
    review = load_review(args.review)
    clipart: Clipart = ({}, []) if args.no_clipart else gallery_clipart.load_clipart(args.clipart)
    if clipart[1] and not args.clipart_root.is_dir():
        ap.error(f"clip-art folder not found: {args.clipart_root} (extract the packages, see "
                 "training/gallery_clipart.py, or pass --no-clipart)")
    decisions, items = build(stamps_dir, args.out, review, args.size, args.quality, args.deb, extra, rcc_dir,
                             clipart, args.clipart_root)
    print(summary(decisions, items, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
