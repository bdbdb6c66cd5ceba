"""The Gradio callbacks. :class:`Handlers` binds them to one shared, read-only :class:`AppModel`;
everything per user comes and goes through the :class:`Session` in ``gr.State``.

``Handlers.retrieve`` is the public API (``/retrieve``); its JSON readout is what scripts read.
"""

from __future__ import annotations

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
from sketchdown.sketch.strokes import Sketch, SketchError, from_parsed, is_blank, parse_json
from webapp import views
from webapp.config import DEFAULT_IDLE_TIMEOUT_S, DEFAULT_INDEX_WORKERS
from webapp.jobs import FairGate
from webapp.model import AppModel
from webapp.privacy import drop_gradio_uploads
from webapp.replay import replayed, target_ranks
from webapp.session import Session, UploadStore, as_session
from webapp.sketchfile import canvas_json, open_sketch_file
from webapp.uploads import MAX_UPLOAD_FILES, UploadError, collect_uploads

log = logging.getLogger("sketchdown.app")

DEFAULT_K = 10
AUTO = "Auto"
OFF = "Off"
GALLERY_DEFAULT = "Default gallery"
GALLERY_MINE = "My photos"
USER_ERRORS = (SketchError, ImageError, GalleryError, WeightsError)


def canvas_sketch(text: Any) -> Sketch | None:
    """The drawing in a ``/retrieve`` payload, or None when the canvas holds no ink (no text, ``[]`` or only
    empty strokes: results are cleared). The payload is parsed once, after the library's limits
    (:func:`parse_json`: size before parsing, counts, number lengths) are checked; every bad payload raises
    :class:`SketchError` with its own message."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    obj = parse_json(text)
    return None if is_blank(obj) else from_parsed(obj)


def top_k(k: Any) -> int:
    """The number of photos to return, 1-48 (``DEFAULT_K`` for None/""); ValueError with a message otherwise."""
    if k in (None, ""):
        return DEFAULT_K
    if isinstance(k, int):  # any size: a 5,000-digit integer is clamped, not converted
        return max(1, min(48, k))
    try:
        v = float(k)
    except (TypeError, ValueError):
        v = math.nan
    if math.isnan(v):
        shown = repr(k[:40]) if isinstance(k, str) else "NaN" if isinstance(k, float) else f"a {type(k).__name__}"
        raise ValueError(f"k must be a number of photos (1-48), not {shown}")
    return max(1, min(48, int(v))) if math.isfinite(v) else (48 if v > 0 else 1)


def readout(res: RetrievalResult, how: str, lam: float | None, s: Session, handler_ms: float) -> dict[str, Any]:
    """The API's JSON readout of one answered query (plain JSON types, rounded for reading)."""
    return {
        "model": res.model,
        "selector": res.canvas_probs is not None,
        "cascade": res.cascade_json(),
        "canvas": res.canvas,
        "canvas_choice": how,
        "canvas_probs": {str(k): round(v, 4) for k, v in res.canvas_probs.items()} if res.canvas_probs else None,
        "lambda_F": lam if res.canvas_probs is not None or res.cascade is not None else None,
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


def lam_update(sel: Any) -> Any:
    """The lambda_F radio for a canvas policy (:meth:`AppModel.policy`): its offered values at its default,
    or greyed out without one."""
    if sel is None:
        return gr.update(interactive=False)
    return gr.update(choices=[(f"{x:g}", x) for x in sel.lams], value=sel.default_lam, interactive=True)
HIDDEN = gr.update(value="", visible=False)


def _cleared(s: Session, msg: str, out: dict[str, Any]) -> tuple:
    """``retrieve``'s outputs for an empty canvas or an error: no photos, idle panels, ``msg`` as status."""
    s.last = out
    return ([], out, views.SELECTOR_EMPTY, views.FLOPS_EMPTY, gr.update(value=None, visible=False), msg, *NO_COMPARE,
            HIDDEN, s)


def _file_outputs(s: Session, canvas: Any = None, status: Any = None) -> tuple:
    """``open_sketch``'s outputs that change only the canvas and the status line (None: left as they are)."""
    skip = gr.skip()
    return (skip if canvas is None else canvas, *(skip,) * 5, skip if status is None else status, *(skip,) * 4, s)


def _empty_readout() -> dict[str, Any]:
    """The readout for a canvas without ink (a fresh dict: the session keeps it as its last readout)."""
    return {"empty": True, "message": "the canvas is empty: draw at least one stroke", "canvas": None,
            "gflops": 0.0, "full_gflops": None, "latency_ms": 0.0, "results": [], "error": None}


class Handlers:
    """The app's callbacks over one loaded model (shared by all sessions, only read), the store of the
    users' photo folders and the gate that gives indexing jobs their turns (defaults: fresh ones)."""

    def __init__(self, model: AppModel, store: UploadStore | None = None, gate: FairGate | None = None) -> None:
        self.model = model
        self.store = store if store is not None else UploadStore(DEFAULT_IDLE_TIMEOUT_S)
        self.gate = gate if gate is not None else FairGate(DEFAULT_INDEX_WORKERS)

    # ---- argument checks --------------------------------------------------------------------
    def parse_choice(self, choice: str | None) -> tuple[str, str | None]:
        """Model radio value -> (sketch branch, what picks its canvas: "cascade", "selector" or None)."""
        return self.model.parse_choice(choice)

    def canvas_arg(self, model: str, policy: str | None, canvas_choice: Any) -> tuple[str | int, str]:
        """(canvas argument for Retriever.retrieve, how it was chosen: "forced", "cascade", "selector" or "fixed")."""
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
        if policy:
            return policy, policy
        return b.default_canvas, "fixed"

    def lam(self, lam: Any, policy: str | None = "selector") -> float | None:
        """lambda_F in [0, 1] (the policy's default for None/""); None where ``policy`` is None or absent."""
        sel = self.model.policy(policy)
        if sel is None:
            return None
        if lam in (None, ""):
            return sel.default_lam
        lam = float(lam)
        if not 0.0 <= lam <= 1.0 or math.isnan(lam):
            raise ValueError(f"lambda_F must be in [0, 1], got {lam}")
        return lam

    def retriever_for(self, source: str | None, s: Session) -> Retriever:
        """The default gallery's retriever, or one over the session's own uploaded photos (a search keeps
        them from counting as idle)."""
        self.store.touch(s)
        if source == GALLERY_MINE:
            if s.gallery is None:
                raise GalleryError("no photos of yours indexed yet (or they were deleted): upload and index them under "
                                   "'Your own photos'")
            return Retriever(self.model.bundle, s.gallery, classes=self.model.offered_classes())
        if self.model.retriever is None or self.model.retriever.gallery is None:
            raise GalleryError("the default gallery is not available: upload and index your own photos")
        return self.model.retriever

    # ---- the per-stroke handler ---------------------------------------------------------------
    def retrieve(self, strokes: str | None, model_choice: str | None = None, canvas_choice: Any = AUTO, lam: Any = None,
                 k: Any = DEFAULT_K, compare: str | None = OFF, source: str | None = GALLERY_DEFAULT, hog: Any = True,
                 session: Any = None):
        """The per-stroke handler (API name ``retrieve``). Returns, in order: ranked photos, the JSON readout,
        the selector panel, the FLOP counter, recognised categories, the status line, the two comparison
        lists and their header, the rank-per-stroke panel (a traced example replayed) and the session state."""
        t0 = time.perf_counter()
        s = as_session(session)
        if self.model.bundle is None:
            return _cleared(s, f"⚠️ {self.model.error}", {"error": self.model.error, "results": []})
        try:
            sketch = canvas_sketch(strokes)
        except SketchError as e:  # the payload's own message (size, syntax, numbers, shape)
            return _cleared(s, f"⚠️ {e}", {"error": str(e), "results": []})
        if sketch is None:
            return _cleared(s, "", _empty_readout())
        return self.answer(sketch, model_choice, canvas_choice, lam, k, compare, source, hog, s, t0)

    def answer(self, sketch: Sketch, model_choice: str | None, canvas_choice: Any, lam: Any, k: Any, compare: str | None,
               source: str | None, hog: Any, s: Session, t0: float, status: str = "") -> tuple:
        """``retrieve``'s outputs for a parsed ``sketch`` (also a sketch opened from a file)."""
        try:
            model, policy = self.parse_choice(model_choice)
            canvas, how = self.canvas_arg(model, policy, canvas_choice)
            lam_v = self.lam(lam, how) if how in ("selector", "cascade") else None
            k = top_k(k)
            retr = self.retriever_for(source, s)
            fusion = None if hog is None else bool(hog)  # the weight set's HOG fusion, or the network alone
            res = retr.retrieve(sketch, k=k, canvas=canvas, model=model, lam=lam_v, fusion=fusion)
            cmp_out = self._compare(retr, sketch, res, compare, lam, k, fusion)
            ranks = self._rank_view(retr, sketch, source, s, dict(model=model, canvas=canvas, lam=lam_v, fusion=fusion))
        except (*USER_ERRORS, ValueError, TypeError) as e:
            return _cleared(s, f"⚠️ {e}", {"error": str(e), "results": []})
        except Exception as e:  # keep serving whatever happens; the log has the traceback
            log.exception("retrieve failed")
            msg = f"internal error ({type(e).__name__}: {e})"
            return _cleared(s, f"⚠️ {msg}", {"error": msg, "results": []})
        s.add(res)
        out = readout(res, how, lam_v, s, (time.perf_counter() - t0) * 1000)
        s.last = out
        cats = gr.update(value=views.category_label(res, self.model.class_photos), visible=True) if res.categories \
            else gr.update(value=None, visible=False)
        full = self.model.bundle.full.default_canvas
        panel = views.selector_html(res, how, lam_v, views.canvas_reason(sketch, res, how, full, lam_v))
        return (views.gallery_items(res), out, panel, views.flops_html(res, s), cats, status, *cmp_out, ranks, s)

    def _rank_view(self, retr: Retriever, sketch: Sketch, source: str | None, s: Session, kw: dict) -> Any:
        """The rank-per-stroke panel while a traced example is replayed on the default gallery, else hidden."""
        hit = replayed(self.model.traced, sketch) if source != GALLERY_MINE else None
        if hit is None:
            return HIDDEN
        ex, n = hit
        how = f" + {kw['canvas']}" if kw["canvas"] in ("selector", "cascade") else f" @{kw['canvas']} px"
        curves = {kw["model"] + how: target_ranks(retr, ex, n, s.ranks, **kw)}
        b = self.model.bundle
        if s.rank_full and b is not None and b.full.name != kw["model"]:
            curves[f"full network ({b.full.name})"] = target_ranks(retr, ex, n, s.ranks, model=b.full.name,
                                                                   fusion=kw["fusion"])
        g = retr.gallery
        return gr.update(value=views.rank_curve_html(curves, len(ex.strokes), ex.target, len(g) if g else 0), visible=True)

    def open_sketch(self, file: Any, model_choice: str | None, canvas_choice: Any, lam: Any, k: Any, compare: str | None,
                    source: str | None, hog: Any, session: Any) -> tuple:
        """A sketch file the user opened: strokes go onto the canvas (whose change event searches with them);
        a drawing image is searched as it is. Returns the canvas value, then ``retrieve``'s outputs."""
        s = as_session(session)
        path = file if isinstance(file, (str, Path)) else getattr(file, "name", None) or getattr(file, "path", None)
        if not path:
            return _file_outputs(s)
        name = Path(str(path)).name
        try:
            sketch = open_sketch_file(path)
        except (SketchError, ImageError, OSError) as e:
            return _file_outputs(s, status=f"⚠️ {views.esc(e)}")
        finally:
            drop_gradio_uploads([str(path)])
        if not sketch.is_raster:
            return _file_outputs(s, canvas_json(sketch), f"Opened **{views.esc(name)}**: {len(sketch.strokes)} strokes, "
                                 "searching with them.")
        if self.model.bundle is None:
            return (gr.skip(), *_cleared(s, f"⚠️ {self.model.error}", {"error": self.model.error, "results": []}))
        note = f"Results for the image **{views.esc(name)}** (the canvas is not used until you draw again)."
        return (gr.skip(), *self.answer(sketch, model_choice, canvas_choice, lam, k, compare, source, hog, s,
                                        time.perf_counter(), note))

    def set_rank_full(self, on: Any, session: Any) -> Session:
        """The rank-per-stroke view's "also the full network" switch."""
        s = as_session(session)
        s.rank_full = bool(on)
        return s

    def _compare(self, retr: Retriever, sketch, res: RetrievalResult, compare: str | None, lam: Any, k: int,
                 fusion: bool | None) -> tuple:
        """The comparison outputs: both ranked lists and their header, or empty ones when comparing is off."""
        if not compare or compare == OFF:
            return NO_COMPARE
        cmodel, cpolicy = self.parse_choice(compare)
        ccanvas, chow = self.canvas_arg(cmodel, cpolicy, AUTO)
        clam = self.lam(lam, chow) if chow in ("selector", "cascade") else None
        cres = retr.retrieve(sketch, k=k, canvas=ccanvas, model=cmodel, lam=clam, fusion=fusion)
        return views.gallery_items(res), views.gallery_items(cres), views.compare_header(res, cres, k)

    def on_model_change(self, choice: str | None):
        """Model radio -> canvas choices of that model (reset to Auto) and whether lambda_F applies."""
        if self.model.bundle is None:
            return gr.update(), gr.update()
        try:
            model, policy = self.parse_choice(choice)
        except ValueError:
            return gr.update(), gr.update()
        sizes = self.model.bundle.sketch[model].canvas_sizes
        return (gr.update(choices=[AUTO] + [str(c) for c in sizes], value=AUTO), lam_update(self.model.policy(policy)))

    def plot_update(self, open_: bool, session: Any):
        """Redraw the FLOPs-vs-accuracy plot (only while the teaching panel is open)."""
        b = self.model.bundle
        if not open_ or b is None or not metric_rows(b.metrics)[1]:
            return gr.skip()
        last = as_session(session).last
        return flops_vs_acc(b.metrics, current=last.get("gflops") or None, full=last.get("full_gflops"))

    # ---- your own photos ------------------------------------------------------------------------
    def index_uploads(self, files: list[Any] | None, session: Any, request: gr.Request | None = None,
                      progress=gr.Progress()):  # noqa: B008
        """Upload handler: unpack, check and index the user's photos into this session's own gallery, in the
        session's own folder; Gradio's copies of the upload are deleted once read.
        Returns (status line, 'search in' radio update, session)."""
        s = as_session(session)
        paths = [f if isinstance(f, (str, Path)) else getattr(f, "name", None) or getattr(f, "path", None) for f in files or []]
        paths = [str(p) for p in paths if p]
        try:
            if self.model.bundle is None:
                return f"⚠️ {self.model.error}", gr.update(), s
            if not paths:
                gr.Warning("Choose some photos or a .zip first.")
                return "⚠️ choose some photos (jpg/png/webp) or a .zip first", gr.update(), s
            if s.indexing:
                return "⚠️ your previous upload is still being indexed: wait for it to finish", gr.update(), s
            s.indexing = True
            try:
                return self._index(paths, s, request.session_hash if request else None, progress)
            finally:
                s.indexing = False
        finally:
            drop_gradio_uploads(paths)

    def _index(self, paths: list[str], s: Session, key: str | None, progress: Any) -> tuple:
        """index_uploads' work: the photos are checked and copied, then indexed and thumbnailed photo by photo
        in fair turns with every other user's upload (:class:`FairGate`)."""
        folder = self.store.folder(s, key)
        photos, thumbs = folder / "photos", folder / "thumbs"
        shutil.rmtree(photos, ignore_errors=True)  # a new upload replaces the previous one
        shutil.rmtree(thumbs, ignore_errors=True)
        s.gallery, s.gallery_note = None, ""
        generation = s.generation
        try:
            progress(0, desc="checking the upload")
            saved, notes = collect_uploads(paths, photos)
            with self.gate.turn() as gate:
                def step(i: int, n: int) -> None:
                    progress((i, n), desc="indexing your photos (edge detection + embedding)", unit="photos")
                    self.store.touch(s)
                    gate.pass_turn()

                g = build_gallery(self.model.bundle, photos, None, progress=step, max_files=MAX_UPLOAD_FILES)
                notes += list(g.meta.get("skipped", []))
                notes += self._thumbnails(g, thumbs, gate)
        except (UploadError, *USER_ERRORS) as e:
            return self._failed(s, folder, generation, f"⚠️ {e}", str(e))
        except Exception as e:  # keep serving
            if s.generation == generation:
                log.exception("indexing uploads failed")
            return self._failed(s, folder, generation, f"⚠️ indexing failed ({type(e).__name__}: {e})",
                                f"indexing failed: {type(e).__name__}: {e}")
        if s.generation != generation:
            return self._failed(s, folder, generation, "", "")
        s.gallery = g
        self.store.touch(s)
        s.gallery_note = f"Indexed **{len(g)}** of your photos in {g.meta.get('build_seconds', 0):.0f} s — now searching them."
        if notes:
            s.gallery_note += f"  \nSkipped {len(notes)}: " + "; ".join(views.esc(n) for n in notes[:5]) + (" …" if len(notes) > 5 else "")
        return s.gallery_note, gr.update(value=GALLERY_MINE), s

    @staticmethod
    def _thumbnails(g: Any, thumbs: Path, gate: FairGate) -> list[str]:
        """Write each indexed photo's thumbnail (one turn each); notes for those that could not be made."""
        notes = []
        thumbs.mkdir(exist_ok=True)  # not parents: a folder deleted meanwhile is not recreated
        for rel in g.paths:
            try:
                views.write_thumbnail(g.root / rel, thumbs)
            except ImageError as e:
                notes.append(str(e))
            gate.pass_turn()
        return notes

    @staticmethod
    def _failed(s: Session, folder: Path, generation: int, status: str, warning: str) -> tuple:
        """index_uploads' outputs for a refused or failed upload, or one deleted while it was indexed ("Delete my
        photos" or the session's end bumped ``s.generation``): nothing of it is kept."""
        if s.generation != generation:
            shutil.rmtree(folder, ignore_errors=True)  # also what a step may have written after the deletion
            return "Your photos were deleted from the server.", gr.update(value=GALLERY_DEFAULT), s
        shutil.rmtree(folder / "photos", ignore_errors=True)
        shutil.rmtree(folder / "thumbs", ignore_errors=True)
        gr.Warning(warning)
        return status, gr.update(value=GALLERY_DEFAULT), s

    def forget_uploads(self, files: list[Any] | None, session: Any):
        """Delete the session's uploaded photos, thumbnails and index, and Gradio's copies of files chosen but
        not indexed yet; search the default gallery again. Returns (status line, radio update, session)."""
        s = as_session(session)
        drop_gradio_uploads(str(getattr(f, "name", None) or getattr(f, "path", None) or f) for f in files or [])
        self.store.forget(s)
        s.gallery_note = ""
        return "Your photos were deleted from the server.", gr.update(value=GALLERY_DEFAULT), s

    def end_session(self, request: gr.Request) -> None:
        """The browser session ended (tab closed or reloaded): delete its photos now."""
        if request is not None and self.store.forget_key(request.session_hash):
            log.info("deleted the uploaded photos of a closed session")
