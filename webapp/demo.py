"""The page: :func:`create_demo` builds the ``gr.Blocks`` from an :class:`AppConfig` (and, when given,
an already loaded :class:`AppModel`), :func:`launch` serves it with the app's CSS and upload limit.

The drawing canvas is a ``gr.HTML`` whose markup, script and styles live in ``webapp/static/``.
"""

from __future__ import annotations

import functools
import json
import logging
import urllib.parse
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr

from sketchdown.eval.plot import flops_vs_acc, metric_rows
from sketchdown.retrieval.webexport import MANIFEST
from sketchdown.sketch.examples import CANVAS, EXAMPLES
from sketchdown.sketch.hog import hog_flops
from webapp import views
from webapp.config import AppConfig
from webapp.handlers import AUTO, DEFAULT_K, GALLERY_DEFAULT, GALLERY_MINE, OFF, Handlers
from webapp.jobs import FairGate
from webapp.limits import RequestSizeLimit
from webapp.model import AppModel, load_model
from webapp.privacy import FileRoutes404, exit_on_sigterm, upload_lifespan, without_temp_files
from webapp.session import SESSIONS_ROOT, Session, UploadStore, cap_malloc_arenas
from webapp.sketchfile import SKETCH_EXTS
from webapp.uploads import MAX_FILE_BYTES, MAX_TOTAL_BYTES, MAX_UPLOAD_FILES

log = logging.getLogger("sketchdown.app")
STATIC = Path(__file__).resolve().parent / "static"
WEB = STATIC / "web"  # the in-page search: sketch.js, worker.js and ONNX Runtime Web
TITLE = "SketchDown: sketch-based photo retrieval on a FLOP budget"
MAX_REQUEST = "110mb"  # Gradio's per-request cap, just above MAX_TOTAL_BYTES of photos
SEARCH_JOBS = 2  # searches at once (2 cores): the encoders, the selector and faiss are read-only and thread-safe
# sessions whose state Gradio keeps (least recently used beyond it are dropped): each holds ~130 KB of
# component state, and an API call without a session hash opens a new one (Gradio's default: 10,000, 1.3 GB)
STATE_SESSIONS = 1000
INDEX_JOBS = 8  # uploads being indexed at once; their heavy steps share the FairGate's turns, so this bounds threads only


@functools.cache
def static_text(name: str) -> str:
    """A file of ``webapp/static`` (markup, script or styles) as text."""
    return (STATIC / name).read_text("utf-8")


def app_examples(examples_dir: Path) -> dict[str, list]:
    """The hand-made examples, then pseudo-sketches traced from held-out gallery photos (never trained on):
    name -> strokes ``[[[x, y], ...], ...]`` on the ``CANVAS`` grid."""
    out = dict(EXAMPLES)
    for f in sorted(Path(examples_dir).glob("traced_*.json")):
        try:
            out[f"traced: {f.stem.removeprefix('traced_')}"] = json.loads(f.read_text())
        except (OSError, ValueError):
            log.warning("skipping unreadable example %s", f)
    return out


def file_url(path: Path) -> str:
    """The page-relative URL Gradio serves a file under a static path at (relative: works under a Space's prefix)."""
    return "gradio_api/file=" + urllib.parse.quote(str(Path(path).resolve()))


def in_page_props(m: AppModel) -> dict[str, Any] | None:
    """What the canvas script needs to search in the browser (URLs of the worker, ONNX Runtime Web, the
    export's manifest and the gallery's photos), or None when there is no export (server only)."""
    if m.web_dir is None:
        return None
    return {"worker": file_url(WEB / "worker.js"), "ort": file_url(WEB / "ort" / "ort.wasm.bundle.min.mjs"),
            "manifest": file_url(m.web_dir / MANIFEST), "photos": file_url(m.gallery_dir) + "/", "k": DEFAULT_K}


def _sketch_row(ui: SimpleNamespace, config: AppConfig, inpage: dict[str, Any] | None) -> None:
    """The drawing canvas (with the in-page results panel) and status line beside the selector panel, FLOP
    counter, categories and source."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=340):
            ui.draw = gr.HTML(
                value="[]", html_template=static_text("canvas.html").replace("{CANVAS}", str(CANVAS)),
                css_template=static_text("canvas.css"), js_on_load=static_text("app.js"),
                elem_id="sd-draw", examples=app_examples(config.examples_dir), apply_default_css=False, inpage=inpage,
            )
            ui.status = gr.Markdown("", elem_id="sd-status")
            ui.rank_panel = gr.HTML("", visible=False, css_template=static_text("panels.css"), elem_id="sd-rank")
            ui.rank_full = gr.Checkbox(False, label="Rank-per-stroke view: also run the full network (slower)",
                                       elem_id="sd-rank-full")
            ui.sketch_file = without_temp_files(gr.File(
                file_count="single", file_types=list(SKETCH_EXTS), elem_id="sd-sketch-file", height=90,
                label="Open a sketch: strokes (.json as downloaded above, .ndjson, .npy) or a drawing image"))
        with gr.Column(scale=6, min_width=340):
            panels = static_text("panels.css")
            ui.live = gr.HTML(static_text("live.html"), css_template=panels, elem_id="sd-live", visible=inpage is not None)
            ui.sel_panel = gr.HTML(views.SELECTOR_EMPTY, css_template=panels, js_on_load=None, elem_id="sd-selector")
            ui.flops_panel = gr.HTML(views.FLOPS_EMPTY, css_template=panels, js_on_load=None, elem_id="sd-flops")
            ui.cats = gr.Label(label="Recognised category", num_top_classes=3, visible=False, elem_id="sd-cats")
            ui.source = gr.Radio([GALLERY_DEFAULT, GALLERY_MINE], value=GALLERY_DEFAULT, label="Search in",
                                 elem_id="sd-source")
    ui.photos = gr.Gallery(label="Ranked photos · click to enlarge", columns=5, height="auto",
                           object_fit="contain", elem_id="sd-results", allow_preview=True, buttons=["fullscreen"],
                           fit_columns=False)


def _model_controls(ui: SimpleNamespace, m: AppModel) -> None:
    """Model, canvas size, lambda_F, top-k, comparison model and HOG switch (inside the teaching panel)."""
    b = m.bundle
    first_model, policy = m.parse_choice(None) if b else (None, None)
    sel = m.policy(policy)
    canvas_choices = [AUTO] + ([str(c) for c in b.sketch[first_model].canvas_sizes] if b else [])
    with gr.Row():
        ui.model_radio = gr.Radio(m.choices, value=m.default_choice, label="Model", elem_id="sd-model",
                                  info="the full network (teacher), each student, or a student whose canvas is picked per sketch")
        ui.canvas_radio = gr.Radio(canvas_choices, value=AUTO, label="Canvas size (px)", elem_id="sd-canvas-size",
                                   info="Auto = the cascade's or selector's pick (or the model's own canvas)")
    with gr.Row():
        ui.lam_radio = gr.Radio([(f"{x:g}", x) for x in sel.lams] if sel else [], value=sel.default_lam if sel else None,
                                label="λ_F (FLOP penalty)", info="higher = cheaper canvases (the cascade stops sooner)",
                                visible=sel is not None, interactive=sel is not None, elem_id="sd-lam")
        ui.k_slider = gr.Slider(1, 30, value=DEFAULT_K, step=1, label="Photos to show (top-k)", elem_id="sd-k")
        ui.compare = gr.Dropdown([(OFF, OFF)] + m.choices, value=OFF, label="Compare with",
                                 info="runs a second model on every stroke and shows both ranked lists", elem_id="sd-compare")
        ui.hog_box = gr.Checkbox(value=True, label="Fuse HOG (line-position descriptor"
                                 + (f", ~{hog_flops(b.hog) / 1e6:.1f} MFLOPs)" if b and b.hog is not None else ")"), elem_id="sd-hog",
                                 info="its weight depends on the gallery: high for many photos of one kind (chairs), low or "
                                 "none for a mix of kinds like the default gallery; off = the network alone",
                                 visible=bool(b and b.hog is not None))


def _teaching_panel(ui: SimpleNamespace, m: AppModel) -> None:
    """The accordion with the model controls, the side-by-side comparison and the FLOPs-vs-accuracy plot."""
    b = m.bundle
    with gr.Accordion("Teaching panel: models, canvas sizes, λ_F and the FLOPs–accuracy trade-off", open=False) as ui.teach:
        _model_controls(ui, m)
        ui.compare_md = gr.Markdown(views.COMPARE_EMPTY)
        with gr.Row(visible=False) as ui.cmp_row:
            ui.cmp_a = gr.Gallery(label="Current model", columns=4, height="auto", object_fit="contain", fit_columns=False)
            ui.cmp_b = gr.Gallery(label="Comparison model", columns=4, height="auto", object_fit="contain", fit_columns=False)
        if b and metric_rows(b.metrics)[1]:
            ui.plot = gr.Plot(label="FLOPs vs Acc@1 (shipped evaluation; red line = your last query)", elem_id="sd-plot",
                              value=flops_vs_acc(b.metrics, full=b.full.flops(b.full.default_canvas) / 1e9))
        else:
            ui.plot = gr.Plot(visible=False)
            gr.Markdown("*No evaluation results shipped with these weights, so there is no FLOPs-vs-accuracy plot. "
                        "(`python -m training.make_results` writes them into the weights' manifest.)*")


def idle_text(seconds: float) -> str:
    """A timeout for people: "30 minutes", "1 minute", "45 seconds"."""
    if seconds >= 60 and seconds % 60 == 0:
        m = int(seconds // 60)
        return f"{m} minute{'s' if m != 1 else ''}"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"


def _uploads_panel(ui: SimpleNamespace, config: AppConfig) -> None:
    """The accordion for the user's own photos, and the raw API readout."""
    with gr.Accordion("Your own photos: upload images or a .zip and search them", open=False):
        gr.Markdown(f"Up to {MAX_UPLOAD_FILES} photos, {MAX_FILE_BYTES // 2**20} MB each, {MAX_TOTAL_BYTES // 2**20} MB in "
                    "total. They stay in your session only (nobody else can search or open them) and are deleted from the "
                    "server when you press **Delete my photos**, when you close or reload this page, and after "
                    f"{idle_text(config.idle_timeout_s)} without a search.", elem_id="sd-upload-note")
        ui.uploads = without_temp_files(gr.File(file_count="multiple", file_types=["image", ".zip"], label="Photos or .zip"))
        with gr.Row():
            ui.index_btn = gr.Button("Index my photos", variant="primary")
            ui.forget_btn = gr.Button("Delete my photos")
        ui.upload_status = gr.Markdown("")
    with gr.Accordion("Raw readout (what the API returns)", open=False):
        ui.readout = gr.JSON(label="readout", elem_id="sd-readout")
        gr.Markdown("Scripts: `Client(url).predict(strokes_json, api_name=\"/retrieve\")` returns these outputs; "
                    "the readout has `canvas`, `gflops`, `full_gflops`, `latency_ms` and the ranked `results`.")


def _wire(ui: SimpleNamespace, h: Handlers) -> None:
    """Events: every stroke and control change re-runs ``retrieve`` (then redraws the plot when it is open)."""
    inputs = [ui.draw, ui.model_radio, ui.canvas_radio, ui.lam_radio, ui.k_slider, ui.compare, ui.source, ui.hog_box, ui.session]
    outputs = [ui.photos, ui.readout, ui.sel_panel, ui.flops_panel, ui.cats, ui.status, ui.cmp_a, ui.cmp_b, ui.compare_md,
               ui.rank_panel, ui.session]
    private: dict[str, Any] = {"show_progress": "hidden", "api_visibility": "private"}
    # every search shares one concurrency group of its own: it never queues behind indexing
    search: dict[str, Any] = {"concurrency_id": "search", "concurrency_limit": SEARCH_JOBS}
    plot = (h.plot_update, [ui.teach_open, ui.session], ui.plot)
    ev = ui.draw.change(h.retrieve, inputs, outputs, api_name="retrieve", trigger_mode="always_last",
                        show_progress="hidden", queue=True, **search)
    ev.then(*plot, **private)
    ui.compare.input(lambda c: gr.update(visible=c not in (None, OFF)), ui.compare, ui.cmp_row, api_visibility="private")
    for ctl in (ui.canvas_radio, ui.lam_radio, ui.k_slider, ui.compare, ui.source, ui.hog_box):
        ctl.input(h.retrieve, inputs, outputs, trigger_mode="always_last", **private, **search).then(*plot, **private)
    ui.model_radio.input(h.on_model_change, ui.model_radio, [ui.canvas_radio, ui.lam_radio], api_visibility="private").then(
        h.retrieve, inputs, outputs, **private, **search).then(*plot, **private)
    ui.sketch_file.upload(h.open_sketch, [ui.sketch_file, *inputs[1:]], [ui.draw, *outputs], **private, **search).then(
        lambda: None, None, ui.sketch_file, **private)
    ui.rank_full.input(h.set_rank_full, [ui.rank_full, ui.session], ui.session, **private).then(
        h.retrieve, inputs, outputs, **private, **search)
    ui.teach.expand(lambda s: (True, h.plot_update(True, s)), ui.session, [ui.teach_open, ui.plot], api_visibility="private")
    ui.teach.collapse(lambda: False, None, ui.teach_open, api_visibility="private")
    # uploads: callable by API clients too (undocumented); each upload is its own job, its heavy steps in fair turns
    ui.index_btn.click(h.index_uploads, [ui.uploads, ui.session], [ui.upload_status, ui.source, ui.session],
                       api_name="index_photos", api_visibility="undocumented", concurrency_id="index",
                       concurrency_limit=INDEX_JOBS).then(
        lambda: None, None, ui.uploads, **private).then(h.retrieve, inputs, outputs, **private, **search)
    ui.forget_btn.click(h.forget_uploads, [ui.uploads, ui.session], [ui.upload_status, ui.source, ui.session],
                        api_name="delete_photos", api_visibility="undocumented").then(
        lambda: None, None, ui.uploads, **private).then(h.retrieve, inputs, outputs, **private, **search)


def create_demo(config: AppConfig, model: AppModel | None = None) -> gr.Blocks:
    """The app's ``gr.Blocks`` for ``config``; loads the model unless an already loaded ``model`` is given
    (tests and scripts share one). Registers the default gallery folder as a static path, so ranked
    photos are served from it instead of being copied to Gradio's cache, and the in-page search's scripts and
    export, which the page loads itself."""
    m = model if model is not None else load_model(config)
    # the gallery first: Gradio checks every result photo against these in order (a realpath each)
    static = ([m.gallery_dir] if m.gallery_dir.is_dir() else []) + [WEB] + ([m.web_dir] if m.web_dir else [])
    gr.set_static_paths([str(p.resolve()) for p in static])
    ui = SimpleNamespace()
    store = UploadStore(config.idle_timeout_s)
    h = Handlers(m, store, FairGate(config.index_workers))
    # Gradio's copies of uploads never indexed go after the idle time too (all of them when the server stops), but
    # never sooner than 10 minutes: an upload whose indexing job still waits in the queue must not vanish under it
    age = max(600, round(config.idle_timeout_s))
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(60, age)) as demo:
        ui.session = gr.State(Session(), delete_callback=store.forget)
        ui.teach_open = gr.State(False)
        gr.Markdown(views.header_markdown(m), elem_classes=["sd-header"])
        if m.error:
            gr.Markdown(f"⚠️ {m.error}", elem_id="sd-banner")
        _sketch_row(ui, config, in_page_props(m))
        _teaching_panel(ui, m)
        _uploads_panel(ui, config)
        _wire(ui, h)
        demo.unload(h.end_session)
    demo.upload_store = store  # launch() runs its sweeper and empties it when the server stops
    return demo


def launch(demo: gr.Blocks, **kw: Any) -> Any:
    """``demo.launch`` with the app's CSS and upload limit, the idle sweeper of the users' photo folders
    (emptied when the server stops), 404s for file URLs of deleted or private photos, and Gradio barred
    from the session folders; ``kw`` overrides (tests: ``launch(demo, prevent_thread_lock=True, server_port=p)``)."""
    from starlette.middleware import Middleware

    cap_malloc_arenas()  # before the server's threads allocate: memory users leave behind can be returned
    store: UploadStore | None = getattr(demo, "upload_store", None)
    app_kwargs = {"middleware": [Middleware(RequestSizeLimit), Middleware(FileRoutes404)]}
    if store is not None:
        app_kwargs["lifespan"] = upload_lifespan(store)
    defaults = {"css": static_text("app.css"), "max_file_size": MAX_REQUEST, "footer_links": ["api"],
                "state_session_capacity": STATE_SESSIONS,
                "blocked_paths": [str(SESSIONS_ROOT)], "app_kwargs": app_kwargs}
    if not kw.get("prevent_thread_lock"):
        exit_on_sigterm()  # the blocking server (app.py): SIGTERM stops it in order, deleting the uploads
    return demo.launch(**{**defaults, **kw})
