"""Clip art from Debian packages for the default gallery (used by build_gallery.py).

No redistributable *photograph* of a chair, stool, bench or sofa was found in Debian's packages
beyond one (GCompris, ``gallery_extra.json``), yet chairs are the paper's benchmark object and the
recognition head names them. Two packages ship free drawings of furniture: ``ulcc`` (CC0-1.0,
``debian/copyright``) and ``openclipart-png`` (Open Clip Art Library, public-domain dedication).
The reviewed list ``training/gallery_clipart.json`` names each file, its label (ending in
"(clip art)", so a result says what it is), gallery folder, kind, author and licence. Thumbnails
are made like Tux Paint stamps: on white, cropped to the drawing, centred with a margin.

Get the files without installing the packages::

    (cd /tmp && apt-get download ulcc openclipart-png)
    for p in ulcc openclipart-png; do dpkg -x /tmp/${p}_*.deb /tmp/clipart/$p; done
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path("/tmp/clipart")  # <root>/<package>/usr/share/...
_FIELDS = ("package", "file", "id", "label", "category", "author", "license")


@dataclass(frozen=True)
class ClipArt:
    """One reviewed drawing: ``file`` is the path inside its package (``usr/share/...``)."""

    package: str
    file: str
    id: str
    label: str
    category: str
    subcategory: str | None
    kind: str | None
    author: str
    license: str


def load_clipart(path: str | Path) -> tuple[dict[str, str], list[ClipArt]]:
    """The reviewed list: (package -> version, drawings). Raises ValueError naming the bad entry."""
    data = json.loads(Path(path).read_text("utf-8"))
    versions = {str(k): str(v) for k, v in data.get("packages", {}).items()}
    out = []
    for e in data.get("items", []):
        missing = [k for k in _FIELDS if not e.get(k)]
        if missing:
            raise ValueError(f"{path}: entry {e!r} lacks {missing}")
        if e["package"] not in versions:
            raise ValueError(f"{path}: {e['id']}: package {e['package']!r} has no version under 'packages'")
        if not e["label"].endswith("(clip art)"):
            raise ValueError(f"{path}: {e['id']}: a clip-art label must end in '(clip art)'")
        out.append(ClipArt(e["package"], e["file"], e["id"], e["label"], e["category"], e.get("subcategory"),
                           e.get("kind"), e["author"], e["license"]))
    ids = [c.id for c in out]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate ids")
    return versions, out


def source_path(root: Path, art: ClipArt) -> Path:
    """Where the drawing is once its package is extracted under ``root``; FileNotFoundError if absent."""
    f = root / art.package / art.file
    if not f.is_file():
        raise FileNotFoundError(f"{f}: missing (extract {art.package}; see training/gallery_clipart.py)")
    return f


def item_record(art: ClipArt) -> dict[str, str | None]:
    rec: dict[str, str | None] = {
        "id": art.id, "file": f"photos/{art.id}.jpg", "label": art.label, "category": art.category,
        "subcategory": art.subcategory, "source_file": art.file, "license": art.license, "package": art.package,
        "author": art.author, "medium": "clip art",
    }
    return {**rec, "kind": art.kind} if art.kind else rec


def attribution_text(versions: dict[str, str], items: list[dict[str, str | None]]) -> str:
    """The clip-art section of ATTRIBUTION.md: one line per drawing."""
    pkgs = ", ".join(f"`{p}` (version `{v}`)" for p, v in sorted(versions.items()))
    lines = [
        "", "## Clip art", "",
        f"{len(items)} drawings (labels ending in \"(clip art)\") come from the Debian packages {pkgs}: furniture, of",
        "which the packages hold no photographs. `ulcc`'s drawings are CC0-1.0 (its `debian/copyright`);",
        "`openclipart-png`'s are dedicated to the public domain by their authors (Open Clip Art Library).",
        "Changes: put on white, cropped, centred on a square, resized, saved as JPEG.", "",
        "| image | label | author | licence | package file |", "|---|---|---|---|---|",
    ]
    lines += [f"| `{it['id']}` | {it['label']} | {it['author']} | {it['license']} | `{it['package']}`: "
              f"`{it['source_file']}` |" for it in items]
    lines += ["", "Rebuild (the list is `training/gallery_clipart.json`):", "", "```sh",
              "(cd /tmp && apt-get download ulcc openclipart-png)",
              "for p in ulcc openclipart-png; do dpkg -x /tmp/${p}_*.deb /tmp/clipart/$p; done",
              "python training/build_gallery.py --clipart-root /tmp/clipart", "```", ""]
    return "\n".join(lines)
