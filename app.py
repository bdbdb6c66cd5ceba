"""SketchDown web app: draw a sketch, watch the canvas selector pick a resolution, get ranked photos
and an honest FLOP count against the full network, after every stroke.

    python app.py                                   # weights/default (or chairv2, or imagenet-lite0), gallery/photos
    python app.py --gallery ../shared/data/chairv2/photo --weights weights/chairv2 --port 7860

Weights and gallery are loaded when this module is imported (``SKETCHDOWN_WEIGHTS_SET`` and
``SKETCHDOWN_GALLERY`` override the defaults; the CLI flags override both), so tests point the
environment at tiny fixtures before ``import app``. Everything user-specific (session FLOP totals,
uploaded photos and their index) lives in per-session ``gr.State``; the module keeps only the shared,
read-only model and default gallery.
"""

from __future__ import annotations

import argparse
import base64
import functools
import io
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from sketchdown.bundles.bundle import ModelBundle, SketchBranch, load_bundle
from sketchdown.bundles.weights import WeightsError
from sketchdown.retrieval.gallery import GRANULARITIES, GalleryError, GalleryIndex, build_gallery
from sketchdown.retrieval.retriever import RetrievalResult, Retriever
from sketchdown.sketch.examples import CANVAS, EXAMPLES
from sketchdown.sketch.hog import hog_flops
from sketchdown.sketch.imageio import IMAGE_EXTS, ImageError, open_image
from sketchdown.sketch.strokes import SketchError, from_json

log = logging.getLogger("sketchdown.app")
REPO = Path(__file__).resolve().parent

# uploads: per request, and per file/total after unpacking
MAX_UPLOAD_FILES = 200
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_TOTAL_BYTES = 100 * 1024 * 1024
MAX_ZIP_ENTRIES = 5000  # a zip listing more entries than this is refused outright
SESSIONS_ROOT = Path(tempfile.gettempdir()) / "sketchdown-sessions"

DEFAULT_K = 10
AUTO = "Auto"
OFF = "Off"
GALLERY_DEFAULT = "Default gallery"
GALLERY_MINE = "My photos"
USER_ERRORS = (SketchError, ImageError, GalleryError, WeightsError)


# ---------------------------------------------------------------------------------------------
# configuration: CLI > environment > defaults
# ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="SketchDown web app (Gradio)")
    p.add_argument("--weights", help="weights folder, hf://owner/name or imagenet-lite0 (env SKETCHDOWN_WEIGHTS_SET)")
    p.add_argument("--gallery", help="folder of photos to search (env SKETCHDOWN_GALLERY; default gallery/photos)")
    p.add_argument("--granularity", choices=GRANULARITIES,
                   help="the gallery's kind, which picks the HOG weight: category (many kinds) or instance (one kind, "
                        "e.g. only chairs) (env SKETCHDOWN_GRANULARITY; default: what its index recorded, else category)")
    p.add_argument("--host", help="bind address (env GRADIO_SERVER_NAME; default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (env GRADIO_SERVER_PORT or PORT; default 7860)")
    return p.parse_args(argv)


def default_weights(cli: str | None = None) -> str:
    """--weights, else $SKETCHDOWN_WEIGHTS_SET, else weights/default, weights/chairv2, imagenet-lite0."""
    if cli:
        return cli
    env = os.environ.get("SKETCHDOWN_WEIGHTS_SET")
    if env:
        return env
    for name in ("default", "chairv2"):
        if (REPO / "weights" / name / "manifest.json").is_file():
            return str(REPO / "weights" / name)
    return "imagenet-lite0"


def default_gallery(cli: str | None = None) -> Path:
    return Path(cli or os.environ.get("SKETCHDOWN_GALLERY") or REPO / "gallery" / "photos")


def app_examples() -> dict[str, list]:
    """The hand-made examples, then pseudo-sketches traced from held-out gallery photos (never trained on)."""
    out = dict(EXAMPLES)
    for f in sorted((REPO / "examples").glob("traced_*.json")):
        try:
            out[f"traced: {f.stem.removeprefix('traced_')}"] = json.loads(f.read_text())
        except (OSError, ValueError):
            log.warning("skipping unreadable example %s", f)
    return out


def server_address(args: argparse.Namespace | None = None) -> tuple[str, int]:
    host = (args and args.host) or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    port = (args and args.port) or os.environ.get("GRADIO_SERVER_PORT") or os.environ.get("PORT") or 7860
    return host, int(port)


# ---------------------------------------------------------------------------------------------
# the shared model (loaded once, read-only)
# ---------------------------------------------------------------------------------------------
@dataclass
class AppModel:
    weights_ref: str
    gallery_dir: Path
    bundle: ModelBundle | None = None
    retriever: Retriever | None = None  # over the default gallery (gallery None when it failed)
    error: str = ""  # one line per load problem; shown as a banner, the app keeps serving
    load_seconds: float = 0.0

    @property
    def choices(self) -> list[tuple[str, str]]:
        """Model radio: (label, value); value "<branch>+selector" or "<branch>"."""
        b = self.bundle
        if b is None:
            return []
        out = []
        if b.selector:
            out.append((f"{b.selector.model} + canvas selector", f"{b.selector.model}+selector"))
        full = b.full.name
        for name in b.sketch:
            if name != full:
                out.append((f"{name} alone (no selector)", name))
        gf = b.full.flops(b.full.default_canvas) / 1e9
        # a VGG-16 full network costs ~40 GFLOPs (~0.2-0.5 s a stroke on a 2-core CPU): it runs only when picked
        slow = f", {gf:.0f} GFLOPs a query: runs only while picked, slow on a CPU" if gf > HEAVY_GFLOPS else ""
        out.append((f"{full} — full network ({arch_name(b.full)}{slow})", full))
        return out

    @property
    def default_choice(self) -> str | None:
        c = self.choices
        return c[0][1] if c else None


HEAVY_GFLOPS = 5.0  # a full network above this is labelled as on-demand in the model picker


def arch_name(branch: SketchBranch) -> str:
    """A reader's name for a branch's backbone: "VGG-16", "EfficientNet-Lite", "MobileNetV2"/torchvision trunks."""
    kind = type(branch.encoder.backbone).__name__
    return {"VGGFeatures": "VGG-16", "LiteFeatures": "EfficientNet-Lite"}.get(kind, "CNN")


def _print_progress(what: str):
    last = [-1]

    def cb(i: int, n: int) -> None:
        pct = int(100 * i / max(1, n))
        if pct // 10 != last[0] // 10 or i == n:
            last[0] = pct
            print(f"[sketchdown] {what}: {i}/{n} photos", file=sys.stderr, flush=True)

    return cb


def load_model(weights_ref: str, gallery_dir: Path, warmup: bool = True, granularity: str | None = None) -> AppModel:
    """Load weights and the default gallery's index (building it when missing or stale)."""
    t0 = time.perf_counter()
    m = AppModel(weights_ref, Path(gallery_dir))
    try:
        m.bundle = load_bundle(weights_ref)
    except Exception as e:  # WeightsError, or anything else: the app still starts and says why
        m.error = f"Could not load weights {weights_ref!r}: {e}"
        log.error(m.error)
        return m
    try:
        m.retriever = Retriever.from_folder(m.bundle, gallery_dir, progress=_print_progress(f"indexing {gallery_dir}"),
                                            granularity=granularity)
    except (GalleryError, ImageError, OSError) as e:
        m.error = f"Default gallery unavailable ({e}); upload your own photos below."
        log.error(m.error)
        m.retriever = Retriever(m.bundle, None)
    if warmup:
        m.retriever.warmup()
    m.load_seconds = time.perf_counter() - t0
    return m


# ---------------------------------------------------------------------------------------------
# per-session state
# ---------------------------------------------------------------------------------------------
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
        self.queries += 1
        self.gflops += res.gflops
        self.full_gflops += res.full_gflops

    @property
    def saving_pct(self) -> float:
        return 100.0 * (1 - self.gflops / self.full_gflops) if self.full_gflops > 0 else 0.0


def cleanup_session(s: Session | None) -> None:
    """gr.State delete callback: remove the session's uploaded photos."""
    if isinstance(s, Session) and s.dir:
        shutil.rmtree(s.dir, ignore_errors=True)
        s.dir, s.gallery = None, None


def _session(s: Any) -> Session:
    return s if isinstance(s, Session) else Session()


# ---------------------------------------------------------------------------------------------
# rendering helpers (HTML, captions, plot)
# ---------------------------------------------------------------------------------------------
def fmt_gflops(x: float | None) -> str:
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}" if x >= 0.001 else f"{x:.2e}"


def ink_png_uri(ink: np.ndarray, display: int = 192) -> str:
    """The network's input canvas as a data URI, upscaled nearest-neighbour so pixels stay visible."""
    a = np.asarray(ink, np.float32)
    if a.ndim == 3:
        a = a.mean(-1) if a.shape[-1] in (1, 3) else a.mean(0)
    img = (255 * (1 - np.clip(a, 0, 1))).astype(np.uint8)
    f = max(1, display // max(img.shape))
    img = np.repeat(np.repeat(img, f, 0), f, 1)
    buf = io.BytesIO()
    Image.fromarray(img, "L").save(buf, "PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def esc(s: Any) -> str:
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


SELECTOR_EMPTY = (
    "<div class='sd-panel sd-empty'><div class='sd-badge sd-badge-idle'>canvas — px</div>"
    "<p>Draw on the canvas: the selector picks the resolution the network sees, live.</p></div>"
)
FLOPS_EMPTY = "<div class='sd-panel sd-empty'><div class='sd-kpi'><b>—</b> GFLOPs</div><p>FLOP counter: waiting for a sketch.</p></div>"


def selector_html(res: RetrievalResult, how: str, lam: float | None) -> str:
    probs = res.canvas_probs
    chosen = res.canvas
    if probs:
        sub = f"picked by the canvas selector (λ<sub>F</sub> = {lam:g}), {100 * probs.get(chosen, 0):.0f}% sure"
    elif how == "forced":
        sub = "forced by you (selector off)"
    else:
        sub = f"the fixed canvas of <b>{esc(res.model)}</b>"
    rows = ""
    options = sorted(probs) if probs else [chosen]
    for c in options:
        p = probs[c] if probs else 1.0
        rows += (
            f"<div class='sd-bar-row{' sd-chosen' if c == chosen else ''}'><span class='sd-bar-label'>{c} px</span>"
            f"<span class='sd-bar'><span style='width:{100 * p:.1f}%'></span></span><span class='sd-bar-val'>{100 * p:.0f}%</span></div>"
        )
    if res.abstraction is not None:
        a = res.abstraction
        abstr = (
            f"<div class='sd-abs'><span>abstraction</span><span class='sd-gauge'><span style='left:{100 * a:.1f}%'></span></span>"
            f"<b>{a:.2f}</b></div><div class='sd-abs-scale'><span>detailed</span><span>abstract</span></div>"
        )
    else:
        abstr = "<div class='sd-abs sd-muted'>abstraction: — (estimated only by the selector)</div>"
    uri = ink_png_uri(res.canvas_image)
    return (
        "<div class='sd-panel sd-selector'>"
        "<div class='sd-sel-main'>"
        f"<div class='sd-sel-text'><div class='sd-badge'>canvas <b>{chosen}</b> px</div><div class='sd-sub'>{sub}</div>"
        f"<div class='sd-bars'>{rows}</div>{abstr}</div>"
        f"<figure class='sd-netview'><img alt='the sketch as the network saw it' src='{uri}'/>"
        f"<figcaption>what the network saw: {chosen}×{chosen}</figcaption></figure>"
        "</div></div>"
    )


def flops_html(res: RetrievalResult, s: Session) -> str:
    save = res.saving_pct
    save_txt = f"{save:.0f}% fewer FLOPs" if save >= 0.5 else ("same as the full network" if save > -0.5 else f"{-save:.0f}% more FLOPs")
    parts = [f"{name}: {1000 * g:.2g} MFLOPs" for name, g in (("selector", res.selector_gflops), ("HOG", res.hog_gflops)) if g > 0]
    if res.hog_alpha > 0:
        parts[-1] += f", weight {res.hog_alpha:g}"
    sel = f" ({', '.join(parts)})" if parts else ""
    return (
        "<div class='sd-panel sd-flops'>"
        "<div class='sd-kpis'>"
        f"<div class='sd-kpi'><b class='sd-q-gflops'>{fmt_gflops(res.gflops)}</b><span>GFLOPs this query{sel}</span></div>"
        f"<div class='sd-kpi'><b>{fmt_gflops(res.full_gflops)}</b><span>GFLOPs full network, same sketch</span></div>"
        f"<div class='sd-kpi sd-save'><b>{save:.0f}%</b><span>{save_txt}</span></div>"
        f"<div class='sd-kpi'><b>{res.latency_ms:.0f}</b><span>ms on this CPU</span></div>"
        "</div>"
        f"<div class='sd-session'>This session: <b>{s.queries}</b> retrievals (live updates while you draw count too) · <b>{fmt_gflops(s.gflops)}</b> GFLOPs used vs "
        f"<b>{fmt_gflops(s.full_gflops)}</b> for the full network · saved <b>{s.saving_pct:.0f}%</b></div>"
        "</div>"
    )


@functools.lru_cache(maxsize=16)
def photo_credits(photo_dir: str) -> dict[str, str]:
    """Photo file name -> "author, licence" for the photos whose ``metadata.json`` (beside the folder or
    in it) names an author: the default gallery's GCompris photos, whose CC-BY licences ask for credit
    where the photo is shown. Empty for folders without such a file."""
    # which metadata.json belongs to a folder follows sketchdown.retrieval.gallery._labels_for (labels, categories);
    # credits are looked up here rather than stored in the index so the index format stays as measured
    root = Path(photo_dir)
    meta = root / "metadata.json"
    if not meta.is_file() and root.name == "photos":  # the default gallery's layout: gallery/{photos/,metadata.json}
        meta = root.parent / "metadata.json"
    if not meta.is_file():
        return {}
    try:
        items = json.loads(meta.read_text("utf-8")).get("items", [])
    except (OSError, ValueError, AttributeError):
        return {}  # someone else's metadata.json: no credits rather than no results
    return {Path(str(it["file"])).name: f"{it['author']}, {it.get('license') or 'licence unknown'}"
            for it in items if isinstance(it, dict) and it.get("author") and it.get("file")}


def gallery_items(res: RetrievalResult) -> list[tuple[str, str]]:
    out = []
    for h in res.hits:
        p = Path(h.path)
        credit = photo_credits(str(p.parent)).get(p.name)
        if credit and not credit.startswith("©"):  # some authors already write "© 2014 ..."
            credit = "© " + credit
        out.append((h.path, f"#{h.rank} {h.label or p.stem} · {h.score:.2f}" + (f" · {credit}" if credit else "")))
    return out


def metric_rows(metrics: dict[str, Any] | None) -> tuple[str, list[dict]]:
    """(dataset name, rows with model / acc@1 / gflops_per_query) from a manifest's metrics:
    ``{"rows": [...]}`` or ``{dataset: {"rows": [...]}}``."""
    if not isinstance(metrics, dict):
        return "", []
    cands: list[tuple[str, Any]] = [("", metrics.get("rows"))] + [
        (str(k), v.get("rows")) for k, v in metrics.items() if isinstance(v, dict)
    ]
    for name, rows in cands:
        if isinstance(rows, list):
            ok = [
                r for r in rows
                if isinstance(r, dict) and isinstance(r.get("acc@1"), (int, float)) and isinstance(r.get("gflops_per_query"), (int, float))
                and r["gflops_per_query"] > 0
            ]
            if ok:
                return name, ok
    return "", []


def flops_plot(metrics: dict[str, Any] | None, current: float | None = None, full: float | None = None):
    """FLOPs-vs-Acc@1 of the shipped evaluation rows, with this query's GFLOPs marked (None if no rows)."""
    name, rows = metric_rows(metrics)
    if not rows:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), dpi=100)
    ax = fig.add_subplot()
    series: dict[str, list[tuple[float, float, str]]] = {}
    for r in rows:
        label = str(r.get("model", "?")).split("/", 1)[-1]
        key = label.split("@")[0] if "@" in label else ("+selector" in label and label.split("(")[0]) or label
        tag = label.split("@")[-1] if "@" in label else "λ=" + label.split("lambda_F=")[-1].rstrip(")")
        series.setdefault(key, []).append((float(r["gflops_per_query"]), float(r["acc@1"]), tag))
    for key, pts in series.items():
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-" if len(pts) > 1 else "s", label=key)
        for x, y, t in pts:
            ax.annotate(t, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if full:
        ax.axvline(full, color="gray", ls="--", lw=0.8, label="full network (this sketch)")
    if current:
        ax.axvline(current, color="crimson", lw=1.6, label=f"this query: {fmt_gflops(current)} GFLOPs")
    ax.set_xscale("log")
    ax.set_xlabel("GFLOPs per query (sketch branch, selector included; log)")
    ax.set_ylabel("Acc@1 (%)")
    ax.set_title(f"FLOPs vs accuracy{f' on {name}' if name else ''}", fontsize=10)
    ax.grid(alpha=0.3)
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(fmt)
    ax.xaxis.set_minor_formatter(fmt)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# handlers
# ---------------------------------------------------------------------------------------------
def _parse_choice(choice: str | None) -> tuple[str, bool]:
    """Model radio value -> (sketch branch, use selector)."""
    b = MODEL.bundle
    assert b is not None
    choice = choice or MODEL.default_choice or b.default_model
    if choice.endswith("+selector"):
        name = choice[: -len("+selector")]
        return name, bool(b.selector and b.selector.model == name)
    if choice in b.sketch:
        return choice, False
    raise ValueError(f"unknown model {choice!r}; this weight set has {sorted(b.sketch)}")


def _canvas_arg(model: str, use_selector: bool, canvas_choice: Any) -> tuple[str | int, str]:
    """(canvas argument for Retriever.retrieve, how it was chosen)."""
    b = MODEL.bundle.sketch[model]
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


def _lam(lam: Any) -> float | None:
    sel = MODEL.bundle.selector if MODEL.bundle else None
    if sel is None:
        return None
    if lam in (None, ""):
        return sel.default_lam
    lam = float(lam)
    if not 0.0 <= lam <= 1.0 or math.isnan(lam):
        raise ValueError(f"lambda_F must be in [0, 1], got {lam}")
    return lam


def _empty_sketch(text: str | None) -> bool:
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


def _retriever_for(source: str | None, s: Session) -> Retriever:
    if source == GALLERY_MINE:
        if s.gallery is None:
            raise GalleryError("no photos of yours indexed yet: upload and index them under 'Your own photos'")
        return Retriever(MODEL.bundle, s.gallery)
    if MODEL.retriever is None or MODEL.retriever.gallery is None:
        raise GalleryError("the default gallery is not available: upload and index your own photos")
    return MODEL.retriever


def _readout(res: RetrievalResult, how: str, lam: float | None, s: Session, handler_ms: float) -> dict[str, Any]:
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


COMPARE_EMPTY = "Pick a model under **Compare with** to see its ranked list next to the current one."


def retrieve(strokes: str | None, model_choice: str | None = None, canvas_choice: Any = AUTO, lam: Any = None,
             k: Any = DEFAULT_K, compare: str | None = OFF, source: str | None = GALLERY_DEFAULT, hog: Any = True,
             session: Any = None):
    """The per-stroke handler (API name ``retrieve``). Returns, in order: ranked photos, the JSON readout,
    the selector panel, the FLOP counter, recognised categories, the status line, the two comparison
    lists and their header, and the session state."""
    t0 = time.perf_counter()
    s = _session(session)
    no_cmp = ([], [], COMPARE_EMPTY)

    def cleared(msg: str, readout: dict[str, Any]):
        s.last = readout
        return ([], readout, SELECTOR_EMPTY, FLOPS_EMPTY, gr.update(value=None, visible=False), msg, *no_cmp, s)

    if MODEL.bundle is None:
        return cleared(f"⚠️ {MODEL.error}", {"error": MODEL.error, "results": []})
    if _empty_sketch(strokes):
        return cleared("", {"empty": True, "message": "the canvas is empty: draw at least one stroke", "canvas": None,
                            "gflops": 0.0, "full_gflops": None, "latency_ms": 0.0, "results": [], "error": None})
    try:
        sketch = from_json(strokes)
        model, use_sel = _parse_choice(model_choice)
        canvas, how = _canvas_arg(model, use_sel, canvas_choice)
        lam_v = _lam(lam) if how == "selector" else None
        k = max(1, min(48, int(k or DEFAULT_K)))
        retr = _retriever_for(source, s)
        fusion = None if hog is None else bool(hog)  # the weight set's HOG fusion, or the network alone
        res = retr.retrieve(sketch, k=k, canvas=canvas, model=model, lam=lam_v, fusion=fusion)
        cmp_out = no_cmp
        if compare and compare != OFF:
            cmodel, cuse = _parse_choice(compare)
            ccanvas, chow = _canvas_arg(cmodel, cuse, AUTO)
            cres = retr.retrieve(sketch, k=k, canvas=ccanvas, model=cmodel, lam=_lam(lam) if chow == "selector" else None,
                                 fusion=fusion)
            cmp_out = (gallery_items(res), gallery_items(cres), compare_header(res, cres, k))
    except USER_ERRORS as e:
        return cleared(f"⚠️ {e}", {"error": str(e), "results": []})
    except (ValueError, TypeError) as e:
        return cleared(f"⚠️ {e}", {"error": str(e), "results": []})
    except Exception as e:  # keep serving whatever happens; the log has the traceback
        log.exception("retrieve failed")
        msg = f"internal error ({type(e).__name__}: {e})"
        return cleared(f"⚠️ {msg}", {"error": msg, "results": []})
    s.add(res)
    readout = _readout(res, how, lam_v, s, (time.perf_counter() - t0) * 1000)
    s.last = readout
    cats = gr.update(value={c: p for c, p in res.categories}, visible=True) if res.categories else gr.update(value=None, visible=False)
    return (gallery_items(res), readout, selector_html(res, how, lam_v), flops_html(res, s), cats, "", *cmp_out, s)


def compare_header(a: RetrievalResult, b: RetrievalResult, k: int) -> str:
    shared = len({h.index for h in a.hits} & {h.index for h in b.hits})

    def desc(r: RetrievalResult) -> str:
        how = "selector" if r.canvas_probs else "fixed"
        return f"**{r.model}** · canvas {r.canvas} px ({how}) · {fmt_gflops(r.gflops)} GFLOPs"

    return f"Left: {desc(a)}  \nRight: {desc(b)}  \nPhotos in both top-{k} lists: **{shared}** of {min(k, len(a.hits))}"


def on_model_change(choice: str | None):
    """Model radio -> canvas choices of that model (reset to Auto) and whether lambda_F applies."""
    if MODEL.bundle is None:
        return gr.update(), gr.update()
    try:
        model, use_sel = _parse_choice(choice)
    except ValueError:
        return gr.update(), gr.update()
    sizes = MODEL.bundle.sketch[model].canvas_sizes
    return (gr.update(choices=[AUTO] + [str(c) for c in sizes], value=AUTO),
            gr.update(interactive=use_sel))


def plot_update(open_: bool, session: Any):
    """Redraw the FLOPs-vs-accuracy plot (only while the teaching panel is open)."""
    if not open_ or MODEL.bundle is None or not metric_rows(MODEL.bundle.metrics)[1]:
        return gr.skip()
    last = _session(session).last
    return flops_plot(MODEL.bundle.metrics, last.get("gflops") or None, last.get("full_gflops"))


# ---- your own photos ---------------------------------------------------------------------
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


def collect_uploads(paths: list[str | Path], dest: Path, *, max_files: int = MAX_UPLOAD_FILES,
                    max_file_bytes: int = MAX_FILE_BYTES, max_total_bytes: int = MAX_TOTAL_BYTES) -> tuple[list[Path], list[str]]:
    """Copy uploaded images (and the images inside uploaded .zip files) into ``dest`` under fresh flat
    names, after checking each decodes as an image. Never extracts a zip member by its own path.

    Returns (saved files, notes about skipped entries); raises :class:`UploadError` for uploads over the
    limits or without any usable image."""
    dest.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    notes: list[str] = []
    total = 0

    def add(name: str, data: bytes) -> None:
        nonlocal total
        if len(saved) >= max_files:
            raise UploadError(f"too many photos: at most {max_files} per upload")
        if len(data) > max_file_bytes:
            notes.append(f"{name}: larger than {max_file_bytes // 2**20} MB, skipped")
            return
        total += len(data)
        if total > max_total_bytes:
            raise UploadError(f"upload too large: more than {max_total_bytes // 2**20} MB of photos in total")
        try:
            open_image(data)
        except ImageError as e:
            notes.append(f"{name}: {str(e).replace('image ', '', 1)}, skipped")
            return
        stem = re.sub(r"[^\w.-]+", "_", Path(name).stem)[:60].strip("._") or "photo"
        out, n = dest / f"{stem}{Path(name).suffix.lower()}", 1
        while out.exists():  # flat names: the same name in two folders of a zip gets a suffix
            n += 1
            out = dest / f"{stem}-{n}{Path(name).suffix.lower()}"
        out.write_bytes(data)
        saved.append(out)

    paths = [Path(p) for p in paths if p]
    plain = [p for p in paths if not p.name.lower().endswith(".zip")]
    if len(plain) > max_files:
        raise UploadError(f"too many photos: {len(plain)} files, at most {max_files} per upload")
    for p in paths:
        name = p.name
        if name.lower().endswith(".zip"):
            _add_zip(p, add, notes, len(saved), max_files, max_file_bytes, max_total_bytes)
        elif name.lower().endswith(IMAGE_EXTS):
            try:
                size = p.stat().st_size
            except OSError:
                notes.append(f"{name}: could not be read, skipped")
                continue
            if size > max_file_bytes:
                notes.append(f"{name}: larger than {max_file_bytes // 2**20} MB, skipped")
                continue
            add(name, p.read_bytes())
        else:
            notes.append(f"{name}: not an image (jpg/png/webp/bmp) or .zip, skipped")
    if not saved:
        raise UploadError("no usable photos in the upload" + (f" ({notes[0]}{' …' if len(notes) > 1 else ''})" if notes else ""))
    return saved, notes


def _add_zip(path: Path, add, notes: list[str], n_before: int, max_files: int, max_file_bytes: int, max_total_bytes: int) -> None:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        notes.append(f"{path.name}: not a readable zip ({e}), skipped")
        return
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > MAX_ZIP_ENTRIES:
            raise UploadError(f"{path.name}: too many entries ({len(infos)})")
        images = []
        for info in infos:
            base = _safe_name(info.filename)
            if base is None:
                notes.append(f"{path.name}: unsafe path {info.filename!r}, skipped")
                continue
            if base.startswith(".") or "__MACOSX" in info.filename:
                continue
            if not base.lower().endswith(IMAGE_EXTS):
                notes.append(f"{base}: not an image, skipped")
                continue
            images.append((info, base))
        if n_before + len(images) > max_files:
            raise UploadError(f"too many photos: {path.name} holds {len(images)}, at most {max_files} per upload")
        if sum(i.file_size for i, _ in images) > max_total_bytes:
            raise UploadError(f"{path.name}: more than {max_total_bytes // 2**20} MB of photos uncompressed")
        for info, base in images:
            if info.file_size > max_file_bytes:
                notes.append(f"{base}: larger than {max_file_bytes // 2**20} MB, skipped")
                continue
            if info.flag_bits & 0x1:
                notes.append(f"{base}: encrypted, skipped")
                continue
            try:
                with zf.open(info) as f:
                    data = f.read(max_file_bytes + 1)  # the header's size may lie: never read more than the limit
            except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, OSError, EOFError) as e:
                notes.append(f"{base}: could not be unpacked ({type(e).__name__}), skipped")
                continue
            add(base, data)


def _session_dir(s: Session) -> Path:
    if s.dir and Path(s.dir).is_dir():
        return Path(s.dir)
    SESSIONS_ROOT.mkdir(parents=True, exist_ok=True, mode=0o700)
    s.dir = tempfile.mkdtemp(prefix="session-", dir=SESSIONS_ROOT)
    return Path(s.dir)


def index_uploads(files: list[Any] | None, session: Any, progress=gr.Progress()):  # noqa: B008
    """Upload handler: unpack, check and index the user's photos into this session's own gallery.
    Returns (status line, 'search in' radio update, session)."""
    s = _session(session)
    if MODEL.bundle is None:
        return f"⚠️ {MODEL.error}", gr.update(), s
    paths = [f if isinstance(f, (str, Path)) else getattr(f, "name", None) or getattr(f, "path", None) for f in files or []]
    paths = [p for p in paths if p]
    if not paths:
        gr.Warning("Choose some photos or a .zip first.")
        return "⚠️ choose some photos (jpg/png/webp) or a .zip first", gr.update(), s
    root = _session_dir(s)
    photos = root / "photos"
    shutil.rmtree(photos, ignore_errors=True)  # a new upload replaces the previous one
    s.gallery, s.gallery_note = None, ""
    try:
        progress(0, desc="checking the upload")
        saved, notes = collect_uploads(paths, photos)
        cb = lambda i, n: progress((i, n), desc="indexing your photos (edge detection + embedding)", unit="photos")  # noqa: E731
        g = build_gallery(MODEL.bundle, photos, None, progress=cb, max_files=MAX_UPLOAD_FILES)
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
        s.gallery_note += f"  \nSkipped {len(notes)}: " + "; ".join(esc(n) for n in notes[:5]) + (" …" if len(notes) > 5 else "")
    return s.gallery_note, gr.update(value=GALLERY_MINE), s


def forget_uploads(session: Any):
    s = _session(session)
    cleanup_session(s)
    s.gallery_note = ""
    return "Your photos were deleted from the server.", gr.update(value=GALLERY_DEFAULT), s


# ---------------------------------------------------------------------------------------------
# the drawing canvas (gr.HTML + JavaScript): strokes JSON [[[x, y], ...], ...] on a CANVAS grid
# ---------------------------------------------------------------------------------------------
CANVAS_TEMPLATE = f"""
<div class="sd-pad">
  <div class="sd-toolbar">
    <button type="button" class="sd-btn sd-undo" title="Undo the last stroke (Ctrl+Z)">↶ Undo</button>
    <button type="button" class="sd-btn sd-clear" title="Clear the canvas">✕ Clear</button>
    <label class="sd-brush-label" title="Only changes how the strokes look to you">Brush
      <input type="range" class="sd-brush" min="1" max="14" value="4"/></label>
    <span class="sd-count">0 strokes</span>
  </div>
  <canvas class="sd-canvas" width="{CANVAS}" height="{CANVAS}" aria-label="drawing canvas"></canvas>
  <div class="sd-examples"><span>Replay an example:</span></div>
</div>
"""

CANVAS_CSS = """
.sd-pad { display: flex; flex-direction: column; gap: 8px; align-items: stretch; max-width: 440px; margin: 0 auto; }
.sd-toolbar { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
.sd-btn { padding: 4px 12px; border-radius: 6px; border: 1px solid var(--border-color-primary);
  background: var(--button-secondary-background-fill); color: var(--button-secondary-text-color);
  cursor: pointer; font-size: 14px; line-height: 1.6; }
.sd-btn:hover { background: var(--button-secondary-background-fill-hover); }
.sd-btn:disabled { opacity: .5; cursor: default; }
.sd-brush-label { display: inline-flex; gap: 6px; align-items: center; font-size: 14px; margin-left: 6px; }
.sd-brush { width: 90px; }
.sd-count { margin-left: auto; font-size: 13px; opacity: .75; }
.sd-canvas { width: 100%; max-width: 440px; aspect-ratio: 1 / 1; height: auto; touch-action: none; user-select: none;
  -webkit-user-select: none; background: #fff; border: 1px solid var(--border-color-primary); border-radius: 10px;
  cursor: crosshair; display: block; margin: 0 auto; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
.sd-examples { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; font-size: 14px; justify-content: center; }
.sd-examples span { opacity: .75; }
"""

CANVAS_JS = r"""
const canvas = element.querySelector('canvas.sd-canvas');
const ctx = canvas.getContext('2d');
const SIZE = canvas.width;
const dpr = Math.max(1, Math.min(3, window.devicePixelRatio || 1));
canvas.width = SIZE * dpr; canvas.height = SIZE * dpr;
ctx.scale(dpr, dpr);
const countEl = element.querySelector('.sd-count');
const brushEl = element.querySelector('.sd-brush');
let strokes = [];      // [{pts: [[x, y], ...], w: width}]
let current = null;
let lastSent = 0, timer = null, replayToken = 0;
const THROTTLE_MS = 150;

function r1(v) { return Math.round(v * 10) / 10; }
function payload() { return JSON.stringify(strokes.map(s => s.pts.map(p => [r1(p[0]), r1(p[1])]))); }
function send() {
  clearTimeout(timer); timer = null;
  lastSent = performance.now();
  const v = payload();
  if (props.value !== v) props.value = v;   // the HTML component dispatches 'change' when its value changes
}
function sendThrottled() {
  const wait = THROTTLE_MS - (performance.now() - lastSent);
  if (wait <= 0) send();
  else if (!timer) timer = setTimeout(send, wait);
}
function updateCount() { countEl.textContent = strokes.length + (strokes.length === 1 ? ' stroke' : ' strokes'); }
function dot(p, w) { ctx.beginPath(); ctx.arc(p[0], p[1], w / 2, 0, 2 * Math.PI); ctx.fillStyle = '#111'; ctx.fill(); }
function seg(a, b, w) {
  ctx.beginPath(); ctx.lineWidth = w; ctx.lineCap = 'round'; ctx.lineJoin = 'round'; ctx.strokeStyle = '#111';
  ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
}
function redraw() {
  ctx.clearRect(0, 0, SIZE, SIZE);
  for (const s of strokes) {
    if (s.pts.length === 1) { dot(s.pts[0], s.w); continue; }
    ctx.beginPath(); ctx.lineWidth = s.w; ctx.lineCap = 'round'; ctx.lineJoin = 'round'; ctx.strokeStyle = '#111';
    ctx.moveTo(s.pts[0][0], s.pts[0][1]);
    for (let i = 1; i < s.pts.length; i++) ctx.lineTo(s.pts[i][0], s.pts[i][1]);
    ctx.stroke();
  }
  updateCount();
}
function pos(e) {
  const r = canvas.getBoundingClientRect();
  const x = (e.clientX - r.left) * SIZE / r.width, y = (e.clientY - r.top) * SIZE / r.height;
  return [Math.max(0, Math.min(SIZE, x)), Math.max(0, Math.min(SIZE, y))];
}
function addPoint(p) {
  const pts = current.pts, q = pts[pts.length - 1];
  if (Math.hypot(p[0] - q[0], p[1] - q[1]) < 1.5) return;
  pts.push(p); seg(q, p, current.w);
}
canvas.addEventListener('pointerdown', (e) => {
  if (e.pointerType === 'mouse' && e.button !== 0) return;
  e.preventDefault();
  replayToken++;
  try { canvas.setPointerCapture(e.pointerId); } catch (err) {}
  current = {pts: [pos(e)], w: +brushEl.value};
  strokes.push(current); dot(current.pts[0], current.w); updateCount();
});
canvas.addEventListener('pointermove', (e) => {
  if (!current) return;
  e.preventDefault();
  const evs = (e.getCoalescedEvents && e.getCoalescedEvents().length) ? e.getCoalescedEvents() : [e];
  for (const ev of evs) addPoint(pos(ev));
  sendThrottled();
});
function endStroke() { if (!current) return; current = null; send(); }
canvas.addEventListener('pointerup', endStroke);
canvas.addEventListener('pointercancel', endStroke);
canvas.addEventListener('lostpointercapture', endStroke);
canvas.addEventListener('contextmenu', (e) => e.preventDefault());

function undo() { replayToken++; current = null; strokes.pop(); redraw(); send(); }
function clearAll() { replayToken++; current = null; strokes = []; redraw(); send(); }
element.querySelector('.sd-undo').addEventListener('click', undo);
element.querySelector('.sd-clear').addEventListener('click', clearAll);
document.addEventListener('keydown', (e) => {
  const t = e.target && e.target.tagName;
  if ((e.ctrlKey || e.metaKey) && !e.shiftKey && e.key === 'z' && t !== 'INPUT' && t !== 'TEXTAREA') { e.preventDefault(); undo(); }
});

const sleep = (ms) => new Promise(r => setTimeout(r, ms));
async function replay(example) {
  const token = ++replayToken;
  current = null; strokes = []; redraw(); send();
  for (const s of example) {
    if (token !== replayToken) return;
    const st = {pts: [s[0].slice()], w: +brushEl.value};
    strokes.push(st); dot(st.pts[0], st.w); updateCount();
    for (let i = 1; i < s.length; i += 2) {
      await sleep(16);
      if (token !== replayToken) return;
      for (let j = i; j < Math.min(i + 2, s.length); j++) { const q = st.pts[st.pts.length - 1]; st.pts.push(s[j].slice()); seg(q, s[j], st.w); }
      sendThrottled();
    }
    send();
    await sleep(280);
  }
}
const exBox = element.querySelector('.sd-examples');
const examples = props.examples || {};
for (const name of Object.keys(examples)) {
  const b = document.createElement('button');
  b.type = 'button'; b.className = 'sd-btn sd-example'; b.textContent = name; b.dataset.example = name;
  b.addEventListener('click', () => replay(examples[name]));
  exBox.appendChild(b);
}
// a value set from Python (e.g. a stroke JSON pushed by a test) redraws the canvas
watch('value', () => {
  if (current) return;
  try {
    const v = JSON.parse(props.value || '[]');
    if (JSON.stringify(v) === payload()) return;
    strokes = (Array.isArray(v) ? v : []).filter(Array.isArray).map(s => ({pts: s, w: +brushEl.value}));
    redraw();
  } catch (err) {}
});
updateCount();
"""

PANEL_CSS = """
.sd-panel { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 12px 14px;
  background: var(--block-background-fill); }
.sd-panel p { margin: 6px 0 0; opacity: .75; font-size: 14px; }
.sd-badge { display: inline-block; font-size: 26px; font-weight: 600; padding: 4px 14px; border-radius: 999px;
  background: var(--color-accent); color: white; letter-spacing: .2px; }
.sd-badge b { font-size: 30px; color: inherit; }
.sd-badge-idle { background: var(--neutral-400); }
.sd-sub { font-size: 13px; opacity: .8; margin: 6px 0 8px; }
.sd-sel-main { display: flex; gap: 14px; align-items: flex-start; flex-wrap: wrap; }
.sd-sel-text { flex: 1 1 200px; min-width: 190px; }
.sd-bars { display: flex; flex-direction: column; gap: 4px; margin: 4px 0 10px; }
.sd-bar-row { display: grid; grid-template-columns: 56px 1fr 40px; gap: 8px; align-items: center; font-size: 13px; }
.sd-bar { height: 12px; border-radius: 6px; background: var(--neutral-200); overflow: hidden; display: block; }
.sd-bar span { display: block; height: 100%; background: var(--neutral-400); border-radius: 6px; }
.sd-chosen .sd-bar span { background: var(--color-accent); }
.sd-chosen { font-weight: 600; }
.sd-bar-val { text-align: right; font-variant-numeric: tabular-nums; }
.sd-abs { display: grid; grid-template-columns: 80px 1fr 40px; gap: 8px; align-items: center; font-size: 13px; }
.sd-gauge { position: relative; height: 10px; border-radius: 5px; display: block;
  background: linear-gradient(90deg, #3b82f6, #a855f7, #f97316); }
.sd-gauge span { position: absolute; top: -4px; width: 4px; height: 18px; margin-left: -2px; background: var(--body-text-color);
  border-radius: 2px; }
.sd-abs-scale { display: flex; justify-content: space-between; font-size: 11px; opacity: .7;
  margin: 2px 40px 0 88px; }
.sd-muted { opacity: .7; display: block; }
.sd-netview { margin: 0; text-align: center; }
.sd-netview img { width: 144px; height: 144px; image-rendering: pixelated; image-rendering: crisp-edges;
  border: 1px solid var(--border-color-primary); border-radius: 4px; background: #fff; }
.sd-netview figcaption { font-size: 12px; opacity: .75; margin-top: 2px; }
.sd-kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(112px, 1fr)); gap: 8px 12px; }
.sd-kpi { display: flex; flex-direction: column; gap: 2px; }
.sd-kpi b { font-size: 22px; font-variant-numeric: tabular-nums; }
.sd-kpi span { font-size: 12px; opacity: .75; line-height: 1.25; }
.sd-save b { color: #16a34a; }
.sd-session { margin-top: 10px; padding-top: 8px; border-top: 1px dashed var(--border-color-primary); font-size: 13px; }
"""

GLOBAL_CSS = """
#sd-status { min-height: 1.5em; }
#sd-status p { color: #b45309; margin: 0; }
#sd-banner { border-left: 4px solid #dc2626; padding-left: 10px; }
.sd-header p { margin: 2px 0; }
@media (max-width: 640px) {
  #sd-results .grid-container { grid-template-columns: repeat(3, minmax(0, 1fr)) !important; }
}
"""


# ---------------------------------------------------------------------------------------------
# the UI
# ---------------------------------------------------------------------------------------------
def _header(m: AppModel) -> str:
    b = m.bundle
    if b is None:
        return "# ✏️ SketchDown"
    parts = []
    for name, br in b.sketch.items():
        sizes = "/".join(str(c) for c in br.canvas_sizes)
        parts.append(f"{name}{f' (full network, {arch_name(br)})' if br is b.full else ''} @ {sizes} px")
    sel = f" + canvas selector (λ<sub>F</sub> ∈ {{{', '.join(f'{x:g}' for x in b.selector.lams)}}})" if b.selector else ""
    g = m.retriever.gallery if m.retriever else None
    gal = f"**{len(g)}** photos in `{m.gallery_dir.name}`" if g is not None else "no default gallery"
    return (
        "# ✏️ SketchDown: sketch it, find the photo — on a FLOP budget\n"
        "Draw on the canvas: after every stroke a light student encoder ranks the photos, and a small RL policy picks "
        "the canvas size the network looks at (rough sketches need fewer pixels). The counter compares every query's "
        "FLOPs with the full network's.  \n"
        f"Weights **{b.name}**: {', '.join(parts)}{sel} · {gal}"
    )


def build_demo(m: AppModel) -> gr.Blocks:
    b = m.bundle
    choices = m.choices
    default_choice = m.default_choice
    sel = b.selector if b else None
    first_model = default_choice.removesuffix("+selector") if b and default_choice else None
    canvas_choices = [AUTO] + ([str(c) for c in b.sketch[first_model].canvas_sizes] if b else [])
    lam_choices = [(f"{x:g}", x) for x in sel.lams] if sel else []
    has_rows = bool(b and metric_rows(b.metrics)[1])

    with gr.Blocks(title="SketchDown: sketch-based photo retrieval on a FLOP budget", analytics_enabled=False) as demo:
        session = gr.State(Session(), delete_callback=cleanup_session)
        teach_open = gr.State(False)
        gr.Markdown(_header(m), elem_classes=["sd-header"])
        if m.error:
            gr.Markdown(f"⚠️ {m.error}", elem_id="sd-banner")
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=340):
                draw = gr.HTML(
                    value="[]", html_template=CANVAS_TEMPLATE, css_template=CANVAS_CSS, js_on_load=CANVAS_JS,
                    elem_id="sd-draw", examples=app_examples(), apply_default_css=False,
                )
                status = gr.Markdown("", elem_id="sd-status")
            with gr.Column(scale=6, min_width=340):
                sel_panel = gr.HTML(SELECTOR_EMPTY, css_template=PANEL_CSS, js_on_load=None, elem_id="sd-selector")
                flops_panel = gr.HTML(FLOPS_EMPTY, css_template=PANEL_CSS, js_on_load=None, elem_id="sd-flops")
                cats = gr.Label(label="Recognised category", num_top_classes=3, visible=False, elem_id="sd-cats")
                source = gr.Radio([GALLERY_DEFAULT, GALLERY_MINE], value=GALLERY_DEFAULT, label="Search in",
                                  elem_id="sd-source")
        photos = gr.Gallery(label="Ranked photos · click to enlarge", columns=5, height="auto",
                            object_fit="contain", elem_id="sd-results", allow_preview=True, buttons=["fullscreen"],
                            fit_columns=False)

        with gr.Accordion("Teaching panel: models, canvas sizes, λ_F and the FLOPs–accuracy trade-off", open=False) as teach:
            with gr.Row():
                model_radio = gr.Radio(choices, value=default_choice, label="Model", elem_id="sd-model",
                                       info="the full network (teacher), each student, or student + canvas selector")
                canvas_radio = gr.Radio(canvas_choices, value=AUTO, label="Canvas size (px)", elem_id="sd-canvas-size",
                                        info="Auto = the selector's pick (or the model's own canvas)")
            with gr.Row():
                lam_radio = gr.Radio(lam_choices, value=sel.default_lam if sel else None, label="λ_F (FLOP penalty)",
                                     info="the selector is conditioned on it: higher = cheaper canvases",
                                     visible=sel is not None, interactive=sel is not None, elem_id="sd-lam")
                k_slider = gr.Slider(1, 30, value=DEFAULT_K, step=1, label="Photos to show (top-k)", elem_id="sd-k")
                compare = gr.Dropdown([(OFF, OFF)] + choices, value=OFF, label="Compare with",
                                      info="runs a second model on every stroke and shows both ranked lists", elem_id="sd-compare")
                hog_box = gr.Checkbox(value=True, label="Fuse HOG (line-position descriptor"
                                      + (f", ~{hog_flops(b.hog) / 1e6:.1f} MFLOPs)" if b and b.hog is not None else ")"), elem_id="sd-hog",
                                      info="its weight depends on the gallery: high for many photos of one kind (chairs), low or "
                                      "none for a mix of kinds like the default gallery; off = the network alone",
                                      visible=bool(b and b.hog is not None))
            compare_md = gr.Markdown(COMPARE_EMPTY)
            with gr.Row(visible=False) as cmp_row:
                cmp_a = gr.Gallery(label="Current model", columns=4, height="auto", object_fit="contain", fit_columns=False)
                cmp_b = gr.Gallery(label="Comparison model", columns=4, height="auto", object_fit="contain", fit_columns=False)
            if has_rows:
                plot = gr.Plot(label="FLOPs vs Acc@1 (shipped evaluation; red line = your last query)",
                               value=flops_plot(b.metrics, None, b.full.flops(b.full.default_canvas) / 1e9))
            else:
                plot = gr.Plot(visible=False)
                gr.Markdown("*No evaluation results shipped with these weights, so there is no FLOPs-vs-accuracy plot. "
                            "(`python -m training.make_results` writes them into the weights' manifest.)*")

        with gr.Accordion("Your own photos: upload images or a .zip and search them", open=False):
            gr.Markdown(f"Up to {MAX_UPLOAD_FILES} photos, {MAX_FILE_BYTES // 2**20} MB each, {MAX_TOTAL_BYTES // 2**20} MB in "
                        "total. They stay in your session only (nobody else can search them) and are deleted when you leave.")
            uploads = gr.File(file_count="multiple", file_types=["image", ".zip"], label="Photos or .zip")
            with gr.Row():
                index_btn = gr.Button("Index my photos", variant="primary")
                forget_btn = gr.Button("Delete my photos")
            upload_status = gr.Markdown("")

        with gr.Accordion("Raw readout (what the API returns)", open=False):
            readout = gr.JSON(label="readout", elem_id="sd-readout")
            gr.Markdown("Scripts: `Client(url).predict(strokes_json, api_name=\"/retrieve\")` returns these outputs; "
                        "the readout has `canvas`, `gflops`, `full_gflops`, `latency_ms` and the ranked `results`.")

        query_inputs = [draw, model_radio, canvas_radio, lam_radio, k_slider, compare, source, hog_box, session]
        query_outputs = [photos, readout, sel_panel, flops_panel, cats, status, cmp_a, cmp_b, compare_md, session]
        # two queries at once on 2 cores: the encoders, the selector and faiss are read-only and thread-safe
        ev = draw.change(retrieve, query_inputs, query_outputs, api_name="retrieve", trigger_mode="always_last",
                         show_progress="hidden", queue=True, concurrency_limit=2)
        ev.then(plot_update, [teach_open, session], plot, show_progress="hidden", api_visibility="private")
        compare.input(lambda c: gr.update(visible=c not in (None, OFF)), compare, cmp_row, api_visibility="private")
        for ctl in (canvas_radio, lam_radio, k_slider, compare, source, hog_box):
            ctl.input(retrieve, query_inputs, query_outputs, trigger_mode="always_last", show_progress="hidden",
                      api_visibility="private").then(plot_update, [teach_open, session], plot, show_progress="hidden",
                                                     api_visibility="private")
        model_radio.input(on_model_change, model_radio, [canvas_radio, lam_radio], api_visibility="private").then(
            retrieve, query_inputs, query_outputs, show_progress="hidden", api_visibility="private").then(
            plot_update, [teach_open, session], plot, show_progress="hidden", api_visibility="private")
        teach.expand(lambda s: (True, plot_update(True, s)), session, [teach_open, plot], api_visibility="private")
        teach.collapse(lambda: False, None, teach_open, api_visibility="private")
        index_btn.click(index_uploads, [uploads, session], [upload_status, source, session], api_visibility="private",
                        concurrency_limit=1).then(retrieve, query_inputs, query_outputs, show_progress="hidden",
                                                  api_visibility="private")
        forget_btn.click(forget_uploads, session, [upload_status, source, session], api_visibility="private").then(
            retrieve, query_inputs, query_outputs, show_progress="hidden", api_visibility="private")
    return demo


LAUNCH_KW: dict[str, Any] = {"css": GLOBAL_CSS, "max_file_size": "110mb", "footer_links": ["api"]}


def launch(**kw: Any):
    """``demo.launch`` with the app's CSS and upload limit (tests: ``launch(prevent_thread_lock=True, server_port=p)``)."""
    return demo.launch(**{**LAUNCH_KW, **kw})


# ---------------------------------------------------------------------------------------------
# module level: configuration, loading, the demo
# ---------------------------------------------------------------------------------------------
_ARGS = parse_args(sys.argv[1:]) if __name__ == "__main__" else None
if not log.handlers:
    _h = logging.StreamHandler()
    _h.setFormatter(logging.Formatter("[sketchdown] %(levelname)s %(message)s"))
    log.addHandler(_h)
    log.setLevel(logging.INFO)
MODEL = load_model(default_weights(_ARGS and _ARGS.weights), default_gallery(_ARGS and _ARGS.gallery),
                   granularity=(_ARGS and _ARGS.granularity) or os.environ.get("SKETCHDOWN_GRANULARITY") or None)
if MODEL.gallery_dir.is_dir():
    # serve the (read-only) gallery photos directly instead of copying each ranked photo to the cache
    gr.set_static_paths([str(MODEL.gallery_dir.resolve())])
demo = build_demo(MODEL)

if __name__ == "__main__":
    host, port = server_address(_ARGS)
    print(f"[sketchdown] model ready in {MODEL.load_seconds:.1f} s; serving on http://{host}:{port}", file=sys.stderr)
    launch(server_name=host, server_port=port)
