"""Per-browser-session state: FLOP totals, the last readout, and the user's uploaded photos.

One :class:`Session` lives in each browser's ``gr.State`` (Gradio deep-copies the default per
session), so nothing here is ever shared between users.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sketchdown.retrieval.gallery import GalleryIndex
from sketchdown.retrieval.retriever import RetrievalResult

SESSIONS_ROOT = Path(tempfile.gettempdir()) / "sketchdown-sessions"


@dataclass
class Session:
    """Everything that belongs to one browser session (never shared between users)."""

    queries: int = 0
    gflops: float = 0.0
    full_gflops: float = 0.0
    last: dict[str, Any] = field(default_factory=dict)  # the last query's readout
    dir: str | None = None  # per-session temp folder for uploaded photos
    gallery: GalleryIndex | None = None  # index of the uploaded photos
    gallery_note: str = ""

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
    """gr.State delete callback: remove the session's uploaded photos."""
    if isinstance(s, Session) and s.dir:
        shutil.rmtree(s.dir, ignore_errors=True)
        s.dir, s.gallery = None, None


def session_dir(s: Session) -> Path:
    """The session's own temp folder (created 0700 under :data:`SESSIONS_ROOT` on first use)."""
    if s.dir and Path(s.dir).is_dir():
        return Path(s.dir)
    SESSIONS_ROOT.mkdir(parents=True, exist_ok=True, mode=0o700)
    s.dir = tempfile.mkdtemp(prefix="session-", dir=SESSIONS_ROOT)
    return Path(s.dir)
