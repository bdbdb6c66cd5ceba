"""Per-browser-session state (FLOP totals, the last readout, uploaded photos) and the folders the app
keeps uploaded photos in.

One :class:`Session` lives in each browser's ``gr.State`` (Gradio deep-copies the default per
session), so nothing here is ever shared between users. A session's uploaded photos live in one folder
that the app owns, registered in an :class:`UploadStore` under the Gradio session hash; the store
deletes it on "Delete my photos", when the browser session ends, after ``idle_s`` seconds without a
request from that session (API clients never say goodbye) and when the server stops.

Photos under :data:`SESSIONS_ROOT` are never handed to Gradio as files (which would copy them into
its shared cache and serve them to anyone holding the URL): results show each one's thumbnail, an SVG
that Gradio inlines into the session's own response (:func:`shown_path`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import secrets
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sketchdown.retrieval.gallery import GalleryIndex
from sketchdown.retrieval.retriever import RetrievalResult

log = logging.getLogger("sketchdown.app")

SESSIONS_ROOT = Path(tempfile.gettempdir()) / "sketchdown-sessions"
THUMB_SUFFIX = ".svg"


@dataclass
class Session:
    """Everything that belongs to one browser session (never shared between users)."""

    queries: int = 0
    gflops: float = 0.0
    full_gflops: float = 0.0
    last: dict[str, Any] = field(default_factory=dict)  # the last query's readout
    dir: str | None = None  # the session's folder for uploaded photos (photos/, thumbs/)
    gallery: GalleryIndex | None = None  # index of the uploaded photos
    gallery_note: str = ""
    key: str | None = None  # the Gradio session hash the folder is registered under
    indexing: bool = False  # an upload of this session is being indexed
    generation: int = 0  # bumped by every deletion: an indexing job that sees it change drops its result
    rank_full: bool = False  # the rank-per-stroke view also runs the full network
    ranks: dict[tuple, int | None] = field(default_factory=dict)  # that view's ranks per prefix and setting, and target rows

    def add(self, res: RetrievalResult) -> None:
        """Count one answered query into the session's FLOP totals."""
        self.queries += 1
        self.gflops += res.gflops
        self.full_gflops += res.full_gflops

    @property
    def saving_pct(self) -> float:
        """Percent of the full network's FLOPs this session did not spend (0 before any query)."""
        return 100.0 * (1 - self.gflops / self.full_gflops) if self.full_gflops > 0 else 0.0


def as_session(s: Any) -> Session:
    """The session in a ``gr.State`` value, or a fresh one (API calls without state pass None)."""
    return s if isinstance(s, Session) else Session()


def cleanup_session(s: Session | None) -> None:
    """Delete the session's uploaded photos, thumbnails and index (its folder) from disk and memory."""
    if isinstance(s, Session):
        s.generation += 1
        if s.dir:
            shutil.rmtree(s.dir, ignore_errors=True)
        s.dir, s.gallery = None, None


def shown_path(photo: str | Path) -> str | None:
    """What ``gr.Gallery`` may be given for a ranked photo: the path itself for the app's galleries; for an
    uploaded photo (under :data:`SESSIONS_ROOT`) its SVG thumbnail, or None once it was deleted."""
    p = Path(photo)
    if not p.is_relative_to(SESSIONS_ROOT):
        return str(p)
    thumb = p.parent.parent / "thumbs" / (p.name + THUMB_SUFFIX)  # <folder>/photos/x.jpg -> <folder>/thumbs/x.jpg.svg
    return str(thumb) if thumb.is_file() else None


def trim_memory() -> None:
    """Hand freed heap back to the OS (glibc keeps it otherwise, so RSS would not fall after a deletion)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


M_ARENA_MAX = -8  # glibc mallopt parameter


def cap_malloc_arenas(n: int = 2) -> None:
    """At most ``n`` glibc malloc arenas (default: one per core of a 2-vCPU Space). With one arena per
    thread that ever allocated, each indexing worker's freed memory stays fragmented in its own arena and
    :func:`trim_memory` cannot hand it back: the server's RSS would creep up with every user who leaves."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, n)


@dataclass
class _Entry:
    session: Session
    last_used: float


class UploadStore:
    """The app's per-user photo folders: ``<root>/<random>/`` (0700) under one root per app instance,
    registered by Gradio session hash with the time of the session's last request.

    ``idle_s``: seconds without a request after which a session's photos are deleted (> 0)."""

    def __init__(self, idle_s: float, parent: Path = SESSIONS_ROOT) -> None:
        if not idle_s > 0:
            raise ValueError(f"idle_s must be > 0, got {idle_s}")
        self.idle_s = float(idle_s)
        self.parent = Path(parent)
        self._root: Path | None = None
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.RLock()
        self._stop: threading.Event | None = None

    @property
    def root(self) -> Path:
        """This store's folder (created 0700 on first use, again after :meth:`clear`)."""
        with self._lock:
            if self._root is None or not self._root.is_dir():
                self.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._root = Path(tempfile.mkdtemp(prefix="app-", dir=self.parent))
            return self._root

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def folder(self, s: Session, key: str | None) -> Path:
        """The session's folder, registered under ``key`` (its Gradio session hash; None: a random key)."""
        with self._lock:
            if s.dir is None or not Path(s.dir).is_dir():
                s.dir = tempfile.mkdtemp(prefix="u-", dir=self.root)
            s.key = key or s.key or secrets.token_hex(8)
            old = self._entries.get(s.key)
            if old is not None and old.session is not s:  # the same hash with a new state: the old one's photos go
                self._drop(old.session)
            self._entries[s.key] = _Entry(s, time.monotonic())
            return Path(s.dir)

    def touch(self, s: Session) -> None:
        """Note a request of this session (it is not idle)."""
        with self._lock:
            e = self._entries.get(s.key or "")
            if e is not None and e.session is s:
                e.last_used = time.monotonic()

    def forget(self, s: Any) -> None:
        """Delete a session's photos now (the button, and ``gr.State``'s delete callback)."""
        if isinstance(s, Session):
            with self._lock:
                self._drop(s)
            trim_memory()

    def forget_key(self, key: str | None) -> bool:
        """Delete the photos of the session registered under ``key`` (the browser session ended)."""
        with self._lock:
            e = self._entries.get(key or "")
            if e is None:
                return False
            self._drop(e.session)
        trim_memory()
        return True

    def _drop(self, s: Session) -> None:
        e = self._entries.get(s.key or "")
        if e is not None and e.session is s:
            del self._entries[s.key]
        cleanup_session(s)

    def sweep(self, now: float | None = None) -> int:
        """Delete the photos of sessions idle for more than ``idle_s`` (not while they index), and any folder
        under the root that no session owns. Returns how many sessions were deleted."""
        now = time.monotonic() if now is None else now
        with self._lock:
            idle = [e.session for e in self._entries.values() if now - e.last_used > self.idle_s and not e.session.indexing]
            for s in idle:
                self._drop(s)
            owned = {Path(e.session.dir).name for e in self._entries.values() if e.session.dir}
            root = self._root
        if root is not None and root.is_dir():
            for d in root.iterdir():
                if d.name not in owned and _idle_for(d) > self.idle_s:
                    shutil.rmtree(d, ignore_errors=True)
        if idle:
            log.info("deleted the uploaded photos of %d idle session(s)", len(idle))
            trim_memory()
        return len(idle)

    def clear(self) -> None:
        """Delete every session's photos and the root (the server stops)."""
        with self._lock:
            for e in list(self._entries.values()):
                self._drop(e.session)
            if self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)
                self._root = None
        trim_memory()

    def start_sweeper(self, every_s: float | None = None) -> None:
        """Sweep every ``every_s`` seconds (default: a quarter of ``idle_s``, 1 to 60 s) in a daemon thread."""
        self.stop_sweeper()
        every = every_s or min(60.0, max(1.0, self.idle_s / 4))
        stop = self._stop = threading.Event()

        def loop() -> None:
            while not stop.wait(every):
                try:
                    self.sweep()
                except Exception:  # keep sweeping whatever one pass met
                    log.exception("sweeping idle uploads failed")

        threading.Thread(target=loop, name="sketchdown-upload-sweeper", daemon=True).start()

    def stop_sweeper(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._stop = None


def _idle_for(d: Path) -> float:
    """Seconds since a folder last changed (a folder no session owns is removed once idle that long)."""
    try:
        return time.time() - d.stat().st_mtime
    except OSError:
        return 0.0
