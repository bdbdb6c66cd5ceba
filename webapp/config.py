"""What the app serves and where: command-line flags > environment > the library's defaults.

The ``SKETCHDOWN_*`` variables are read by :mod:`sketchdown.config`; this module adds the server
address (``GRADIO_SERVER_NAME``, ``GRADIO_SERVER_PORT`` / ``PORT``, as Gradio and Spaces set them).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from sketchdown import config
from sketchdown.retrieval.gallery import GRANULARITIES

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_IDLE_TIMEOUT_S = 1800.0  # uploaded photos of a session without requests for 30 min are deleted
DEFAULT_INDEX_WORKERS = 2  # photos being indexed at once, over all users (one per core of a small server)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The app's command line (``python app.py --help``); unset flags are None."""
    p = argparse.ArgumentParser(description="SketchDown web app (Gradio)")
    p.add_argument("--weights", help="weights folder, hf://owner/name or imagenet-lite0 (env SKETCHDOWN_WEIGHTS_SET)")
    p.add_argument("--gallery", help="folder of photos to search (env SKETCHDOWN_GALLERY; default gallery/photos)")
    p.add_argument("--granularity", choices=GRANULARITIES,
                   help="the gallery's kind, which picks the HOG weight: category (many kinds) or instance (one kind, "
                        "e.g. only chairs) (env SKETCHDOWN_GRANULARITY; default: what its index recorded, else category)")
    p.add_argument("--host", help="bind address (env GRADIO_SERVER_NAME; default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (env GRADIO_SERVER_PORT or PORT; default 7860)")
    p.add_argument("--idle-timeout", type=float, metavar="SECONDS",
                   help=f"delete a session's uploaded photos after this long without a request "
                        f"(default {DEFAULT_IDLE_TIMEOUT_S:.0f})")
    p.add_argument("--index-workers", type=int, metavar="N",
                   help=f"uploaded photos indexed at once over all users, in fair turns (default {DEFAULT_INDEX_WORKERS})")
    p.add_argument("--server-only", action="store_true",
                   help="never search in the visitor's browser: every stroke goes to the server (env SKETCHDOWN_SERVER_ONLY=1)")
    return p.parse_args(argv)


@dataclass(frozen=True)
class AppConfig:
    """Everything the app is built from.

    ``weights``: a weights folder, ``hf://owner/name`` or ``imagenet-lite0``; ``gallery``: the default
    photo folder; ``granularity``: ``category``/``instance`` or None (what the gallery's index recorded);
    ``index_dir``: where the gallery's index lives (None: the library's default location for the folder);
    ``examples_dir``: folder with ``traced_*.json`` example sketches; ``warmup``: run one query per branch
    at load so the first stroke is not slow; ``idle_timeout_s``: seconds without a request after which a
    session's uploaded photos are deleted (> 0; the page states it); ``index_workers``: photos decoded and
    embedded at once over all users' uploads (>= 1), taken in turns photo by photo so that no upload waits
    behind another's; ``in_page``: export the student, selector and default gallery for the page, which then
    ranks the default gallery in the visitor's browser (False: every stroke goes to the server).
    """

    weights: str
    gallery: Path
    granularity: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    index_dir: Path | None = None
    examples_dir: Path = field(default_factory=config.examples_dir)
    warmup: bool = True
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    index_workers: int = DEFAULT_INDEX_WORKERS
    in_page: bool = True

    def __post_init__(self) -> None:
        if not self.idle_timeout_s > 0:
            raise ValueError(f"idle_timeout_s must be > 0, got {self.idle_timeout_s}")
        if self.index_workers < 1:
            raise ValueError(f"index_workers must be >= 1, got {self.index_workers}")

    @classmethod
    def from_env(cls, args: argparse.Namespace | None = None) -> AppConfig:
        """The configuration from parsed flags (:func:`parse_args`; None = no flags) over the environment."""
        def arg(name: str):
            return getattr(args, name, None) if args is not None else None

        host = arg("host") or os.environ.get("GRADIO_SERVER_NAME") or DEFAULT_HOST
        port = arg("port") or os.environ.get("GRADIO_SERVER_PORT") or os.environ.get("PORT") or DEFAULT_PORT
        return cls(
            weights=config.default_weights_ref(arg("weights")),
            gallery=config.gallery_dir(arg("gallery")),
            granularity=config.granularity(arg("granularity")),
            host=host,
            port=int(port),
            idle_timeout_s=arg("idle_timeout") or DEFAULT_IDLE_TIMEOUT_S,
            index_workers=arg("index_workers") or DEFAULT_INDEX_WORKERS,
            in_page=not (arg("server_only") or os.environ.get("SKETCHDOWN_SERVER_ONLY", "") in ("1", "true")),
        )
