"""Where uploaded photos could linger on the Gradio side, and how the app makes them go away.

- An upload first lands in Gradio's upload folder (``GRADIO_TEMP_DIR``, ``<sha>/<name>``), served at
  ``/gradio_api/file=<path>`` to anyone who has the URL: :func:`drop_gradio_uploads` deletes those copies
  once the app has its own (and the "Delete my photos" button deletes uploads never indexed); Gradio's
  ``delete_cache`` removes what is left after the idle timeout, and everything when the server stops.
- :class:`FileRoutes404` answers 404 for ``/gradio_api/file=`` URLs of deleted uploads (Gradio says 403
  for any missing file) and for anything under the app's session folders, which Gradio never serves.
- :func:`without_temp_files` spares ``gr.File`` the empty temp file that Gradio 6.31's preprocessing creates
  (and never deletes) in its cache for every uploaded file.
- :func:`upload_lifespan` runs the idle sweeper while the server runs and deletes every user folder
  when it stops; :func:`exit_on_sigterm` turns SIGTERM into that orderly stop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import gradio as gr
import gradio_client.utils as client_utils
from gradio.data_classes import FileData
from gradio.utils import NamedString, get_upload_folder

from webapp.session import SESSIONS_ROOT, UploadStore

log = logging.getLogger("sketchdown.app")
FILE_ROUTES = ("/gradio_api/file=", "/gradio_api/file/")


def gradio_upload_dir() -> Path:
    """Gradio's upload folder (``GRADIO_TEMP_DIR``, else ``<tmp>/gradio``), resolved."""
    return Path(get_upload_folder()).resolve()


def drop_gradio_uploads(paths: Iterable[str | Path]) -> int:
    """Delete the files among ``paths`` that lie in Gradio's upload folder (and their emptied ``<sha>/``
    folders); anything elsewhere is left alone. Returns how many files went."""
    root, n = gradio_upload_dir(), 0
    for p in paths:
        f = Path(p).resolve()
        if f == root or not f.is_relative_to(root):
            continue
        with contextlib.suppress(OSError):
            f.unlink()
            n += 1
        with contextlib.suppress(OSError):
            if f.parent != root:
                f.parent.rmdir()  # only when empty: the same content uploaded twice shares the folder
    return n


def without_temp_files(box: gr.File) -> gr.File:
    """``box`` handing its handler each uploaded file's path as is. Gradio 6.31's own preprocessing also
    creates an empty ``NamedTemporaryFile`` in its cache per uploaded file and never removes it. (Patched on
    the instance: a ``gr.File`` subclass would make Gradio write a ``.pyi`` stub beside this module.)"""

    def process(f: FileData) -> NamedString | bytes:
        if box.type != "filepath":
            return gr.File._process_single_file(box, f)
        if box.file_types and not client_utils.is_valid_file(f.path, box.file_types):
            raise gr.Error(f"Invalid file type. Please upload a file that is one of these formats: {box.file_types}")
        return NamedString(f.path)

    box._process_single_file = process
    return box


def _file_target(path: str) -> Path | None:
    """The local file a Gradio file route would serve for this request path, or None for other routes."""
    for prefix in FILE_ROUTES:
        if path.startswith(prefix):
            target = urllib.parse.unquote(path[len(prefix):])
            if "://" in target:
                return None  # Gradio's own proxy for remote URLs
            return Path(os.path.abspath(target if target.startswith("/") else "/" + target))
    return None


class FileRoutes404:
    """ASGI middleware: 404 for Gradio file URLs under the session folders (never served, existing or not)
    and for missing files in Gradio's upload folder (deleted photos); everything else passes through."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope.get("type") == "http" and scope.get("method") in ("GET", "HEAD"):
            target = _file_target(scope.get("path", ""))
            if target is not None and self._hidden(target):
                await send({"type": "http.response.start", "status": 404,
                            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store")]})
                await send({"type": "http.response.body", "body": b"Not found"})
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _hidden(target: Path) -> bool:
        if target.is_relative_to(SESSIONS_ROOT) or target.resolve().is_relative_to(SESSIONS_ROOT.resolve()):
            return True
        return target.is_relative_to(gradio_upload_dir()) and not target.exists()


def upload_lifespan(store: UploadStore) -> Callable[[Any], contextlib.AbstractAsyncContextManager]:
    """A FastAPI lifespan for ``launch(app_kwargs=...)``: the store's sweeper runs while the server does;
    at shutdown every user folder is deleted."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        store.start_sweeper()
        try:
            yield
        finally:
            store.stop_sweeper()
            store.clear()
            log.info("deleted all uploaded photos (server stopping)")

    return lifespan


def exit_on_sigterm() -> None:
    """Make SIGTERM stop the server like Ctrl-C does (Gradio's blocking launch then closes the server, whose
    shutdown deletes the uploads); Python's default would end the process at once, leaving them on disk."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
