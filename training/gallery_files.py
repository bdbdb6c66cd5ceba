"""The gallery's output files: package versions, metadata records and ``ATTRIBUTION.md`` text.

Used by ``training/build_gallery.py``; every writer leaves an unchanged file untouched, so a rebuild
from the same packages gives byte-identical files.
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from training import gcompris
from training.gallery_stamps import LICENSE, PACKAGE, Stamp, read_label


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
    return with_kind(photo.kind, {
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
    })


def with_kind(kind: str | None, record: dict[str, str | None]) -> dict[str, str | None]:
    """``record`` with ``"kind"`` (the object's name, for photos no folder names) when there is one."""
    return {**record, "kind": kind} if kind else record


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
