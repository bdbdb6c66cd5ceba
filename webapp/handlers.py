"""The Gradio callbacks. :class:`Handlers` binds them to one shared, read-only :class:`AppModel`;
everything per user comes and goes through the :class:`Session` in ``gr.State``.

``Handlers.retrieve`` is the public API (``/retrieve``); its JSON readout is what scripts read.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

import gradio as gr

from sketchdown.bundles.weights import WeightsError
from sketchdown.eval.plot import flops_vs_acc, metric_rows
from sketchdown.retrieval.gallery import GalleryError, build_gallery
from sketchdown.retrieval.retriever import RetrievalResult, Retriever
from sketchdown.sketch.imageio import ImageError
from sketchdown.sketch.strokes import SketchError, from_json
from webapp import views
from webapp.model import AppModel
from webapp.session import Session, as_session, cleanup_session, session_dir
from webapp.uploads import MAX_UPLOAD_FILES, UploadError, collect_uploads

log = logging.getLogger("sketchdown.app")

DEFAULT_K = 10
AUTO = "Auto"
OFF = "Off"
GALLERY_DEFAULT = "Default gallery"
GALLERY_MINE = "My photos"
USER_ERRORS = (SketchError, ImageError, GalleryError, WeightsError)


def empty_sketch(text: str | None) -> bool:
    """True when the canvas holds no ink (no text, [] or only empty strokes): results are cleared."""
    if text is None or not str(text).strip():
        return True
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError, TypeError):
        return False
    if isinstance(obj, dict) and "strokes" in obj:
        obj = obj["strokes"]
    return isinstance(obj, list) and all(isinstance(s, list) and len(s) == 0 for s in obj)


def readout(res: RetrievalResult, how: str, lam: float | None, s: Session, handler_ms: float) -> dict[str, Any]:
    """The API's JSON readout of one answered query (plain JSON types, rounded for reading)."""
    return {
        "model": res.model,
        "selector": res.canvas_probs is not None,
        "canvas": res.canvas,
        "canvas_choice": how,
        "canvas_probs": {str(k): round(v, 4) for k, v in res.canvas_probs.items()} if res.canvas_probs else None,
        "lambda_F": lam if res.canvas_probs is not None else None,
        "abstraction": None if res.abstraction is None else round(res.abstraction, 4),
        "gflops": round(res.gflops, 6),
        "selector_gflops": round(res.selector_gflops, 6),
        "hog": res.hog_gflops > 0,
        "hog_gflops": round(res.hog_gflops, 9),
        "hog_alpha": res.hog_alpha,
        "full_gflops": round(res.full_gflops, 6),
        "saving_pct": round(res.saving_pct, 2),
        "params": res.params,
        "latency_ms": round(res.latency_ms, 2),
        "handler_ms": round(handler_ms, 2),
        "categories": [[c, round(p, 4)] for c, p in res.categories],
        "results": [{"rank": h.rank, "file": Path(h.path).name, "label": h.label, "category": h.category, "score": round(h.score, 4)}
                    for h in res.hits],
        "session": {"queries": s.queries, "gflops": round(s.gflops, 6), "full_gflops": round(s.full_gflops, 6),
                    "saving_pct": round(s.saving_pct, 2)},
        "error": None,
    }


NO_COMPARE = ([], [], views.COMPARE_EMPTY)


def _cleared(s: Session, msg: str, out: dict[str, Any]) -> tuple:
    """``retrieve``'s outputs for an empty canvas or an error: no photos, idle panels, ``msg`` as status."""
    s.last = out
    return ([], out, views.SELECTOR_EMPTY, views.FLOPS_EMPTY, gr.update(value=None, visible=False), msg, *NO_COMPARE, s)


def _empty_readout() -> dict[str, Any]:
    """The readout for a canvas without ink (a fresh dict: the session keeps it as its last readout)."""
    return {"empty": True, "message": "the canvas is empty: draw at least one stroke", "canvas": None,
            "gflops": 0.0, "full_gflops": None, "latency_ms": 0.0, "results": [], "error": None}


class Handlers:
    """The app's callbacks over one loaded model (shared by all sessions, only read)."""

    def __init__(self, model: AppModel) -> None:
        self.model = model

    # ---- argument checks --------------------------------------------------------------------
    def parse_choice(self, choice: str | None) -> tuple[str, bool]:
        """Model radio value -> (sketch branch, use selector)."""
        b = self.model.bundle
        assert b is not None
        choice = choice or self.model.default_choice or b.default_model
        if choice.endswith("+selector"):
            name = choice[: -len("+selector")]
            return name, bool(b.selector and b.selector.model == name)
        if choice in b.sketch:
            return choice, False
        raise ValueError(f"unknown model {choice!r}; this weight set has {sorted(b.sketch)}")

    def canvas_arg(self, model: str, use_selector: bool, canvas_choice: Any) -> tuple[str | int, str]:
        """(canvas argument for Retriever.retrieve, how it was chosen: "forced", "selector" or "fixed")."""
        b = self.model.bundle.sketch[model]
        forced = None
        if canvas_choice not in (None, "", AUTO):
            try:
                forced = int(canvas_choice)
            except (TypeError, ValueError):
                raise ValueError(f"canvas must be 'Auto' or one of {list(b.canvas_sizes)}, not {canvas_choice!r}") from None
        if forced is not None:
            if forced not in b.canvas_sizes:
                raise ValueError(f"model '{model}' runs at canvas {list(b.canvas_sizes)}, not {forced}")
            return forced, "forced"
        if use_selector:
            return "auto", "selector"
        return b.default_canvas, "fixed"

    def lam(self, lam: Any) -> float | None:
        """lambda_F in [0, 1] (the selector's default for None/""); None without a selector."""
        sel = self.model.bundle.selector if self.model.bundle else None
        if sel is None:
            return None
        if lam in (None, ""):
            return sel.default_lam
        lam = float(lam)
        if not 0.0 <= lam <= 1.0 or math.isnan(lam):
            raise ValueError(f"lambda_F must be in [0, 1], got {lam}")
        return lam

    def retriever_for(self, source: str | None, s: Session) -> Retriever:
        """The default gallery's retriever, or one over the session's own uploaded photos."""
        if source == GALLERY_MINE:
            if s.gallery is None:
                raise GalleryError("no photos of yours indexed yet: upload and index them under 'Your own photos'")
            return Retriever(self.model.bundle, s.gallery)
        if self.model.retriever is None or self.model.retriever.gallery is None:
            raise GalleryError("the default gallery is not available: upload and index your own photos")
        return self.model.retriever

    # ---- the per-stroke handler ---------------------------------------------------------------
    def retrieve(self, strokes: str | None, model_choice: str | None = None, canvas_choice: Any = AUTO, lam: Any = None,
                 k: Any = DEFAULT_K, compare: str | None = OFF, source: str | None = GALLERY_DEFAULT, hog: Any = True,
                 session: Any = None):
        """The per-stroke handler (API name ``retrieve``). Returns, in order: ranked photos, the JSON readout,
        the selector panel, the FLOP counter, recognised categories, the status line, the two comparison
        lists and their header, and the session state."""
        t0 = time.perf_counter()
        s = as_session(session)
        if self.model.bundle is None:
            return _cleared(s, f"⚠️ {self.model.error}", {"error": self.model.error, "results": []})
        if empty_sketch(strokes):
            return _cleared(s, "", _empty_readout())
        try:
            sketch = from_json(strokes)
            model, use_sel = self.parse_choice(model_choice)
            canvas, how = self.canvas_arg(model, use_sel, canvas_choice)
            lam_v = self.lam(lam) if how == "selector" else None
            k = max(1, min(48, int(k or DEFAULT_K)))
            retr = self.retriever_for(source, s)
            fusion = None if hog is None else bool(hog)  # the weight set's HOG fusion, or the network alone
            res = retr.retrieve(sketch, k=k, canvas=canvas, model=model, lam=lam_v, fusion=fusion)
            cmp_out = self._compare(retr, sketch, res, compare, lam, k, fusion)
        except (*USER_ERRORS, ValueError, TypeError) as e:
            return _cleared(s, f"⚠️ {e}", {"error": str(e), "results": []})
        except Exception as e:  # keep serving whatever happens; the log has the traceback
            log.exception("retrieve failed")
            msg = f"internal error ({type(e).__name__}: {e})"
            return _cleared(s, f"⚠️ {msg}", {"error": msg, "results": []})
        s.add(res)
        out = readout(res, how, lam_v, s, (time.perf_counter() - t0) * 1000)
        s.last = out
        cats = gr.update(value=dict(res.categories), visible=True) if res.categories else gr.update(value=None, visible=False)
        return (views.gallery_items(res), out, views.selector_html(res, how, lam_v), views.flops_html(res, s), cats, "",
                *cmp_out, s)

    def _compare(self, retr: Retriever, sketch, res: RetrievalResult, compare: str | None, lam: Any, k: int,
                 fusion: bool | None) -> tuple:
        """The comparison outputs: both ranked lists and their header, or empty ones when comparing is off."""
        if not compare or compare == OFF:
            return NO_COMPARE
        cmodel, cuse = self.parse_choice(compare)
        ccanvas, chow = self.canvas_arg(cmodel, cuse, AUTO)
        cres = retr.retrieve(sketch, k=k, canvas=ccanvas, model=cmodel, lam=self.lam(lam) if chow == "selector" else None,
                             fusion=fusion)
        return views.gallery_items(res), views.gallery_items(cres), views.compare_header(res, cres, k)

    def on_model_change(self, choice: str | None):
        """Model radio -> canvas choices of that model (reset to Auto) and whether lambda_F applies."""
        if self.model.bundle is None:
            return gr.update(), gr.update()
        try:
            model, use_sel = self.parse_choice(choice)
        except ValueError:
            return gr.update(), gr.update()
        sizes = self.model.bundle.sketch[model].canvas_sizes
        return (gr.update(choices=[AUTO] + [str(c) for c in sizes], value=AUTO),
                gr.update(interactive=use_sel))

    def plot_update(self, open_: bool, session: Any):
        """Redraw the FLOPs-vs-accuracy plot (only while the teaching panel is open)."""
        b = self.model.bundle
        if not open_ or b is None or not metric_rows(b.metrics)[1]:
            return gr.skip()
        last = as_session(session).last
        return flops_vs_acc(b.metrics, current=last.get("gflops") or None, full=last.get("full_gflops"))

    # ---- your own photos ------------------------------------------------------------------------
    def index_uploads(self, files: list[Any] | None, session: Any, progress=gr.Progress()):  # noqa: B008
        """Upload handler: unpack, check and index the user's photos into this session's own gallery.
        Returns (status line, 'search in' radio update, session)."""
        s = as_session(session)
        if self.model.bundle is None:
            return f"⚠️ {self.model.error}", gr.update(), s
        paths = [f if isinstance(f, (str, Path)) else getattr(f, "name", None) or getattr(f, "path", None) for f in files or []]
        paths = [p for p in paths if p]
        if not paths:
            gr.Warning("Choose some photos or a .zip first.")
            return "⚠️ choose some photos (jpg/png/webp) or a .zip first", gr.update(), s
        photos = session_dir(s) / "photos"
        shutil.rmtree(photos, ignore_errors=True)  # a new upload replaces the previous one
        s.gallery, s.gallery_note = None, ""
        try:
            progress(0, desc="checking the upload")
            saved, notes = collect_uploads(paths, photos)
            cb = lambda i, n: progress((i, n), desc="indexing your photos (edge detection + embedding)", unit="photos")  # noqa: E731
            g = build_gallery(self.model.bundle, photos, None, progress=cb, max_files=MAX_UPLOAD_FILES)
        except (UploadError, *USER_ERRORS) as e:
            shutil.rmtree(photos, ignore_errors=True)
            gr.Warning(str(e))
            return f"⚠️ {e}", gr.update(value=GALLERY_DEFAULT), s
        except Exception as e:  # keep serving
            log.exception("indexing uploads failed")
            shutil.rmtree(photos, ignore_errors=True)
            gr.Warning(f"indexing failed: {type(e).__name__}: {e}")
            return f"⚠️ indexing failed ({type(e).__name__}: {e})", gr.update(value=GALLERY_DEFAULT), s
        s.gallery = g
        notes += list(g.meta.get("skipped", []))
        s.gallery_note = f"Indexed **{len(g)}** of your photos in {g.meta.get('build_seconds', 0):.0f} s — now searching them."
        if notes:
            s.gallery_note += f"  \nSkipped {len(notes)}: " + "; ".join(views.esc(n) for n in notes[:5]) + (" …" if len(notes) > 5 else "")
        return s.gallery_note, gr.update(value=GALLERY_MINE), s

    @staticmethod
    def forget_uploads(session: Any):
        """Delete the session's uploaded photos and their index; search the default gallery again."""
        s = as_session(session)
        cleanup_session(s)
        s.gallery_note = ""
        return "Your photos were deleted from the server.", gr.update(value=GALLERY_DEFAULT), s
