"""What the app shows: the selector and FLOP-counter panels (HTML), result captions with photo
credits, the comparison header and the page header. (The FLOPs-vs-accuracy plot is
:func:`sketchdown.eval.plot.flops_vs_acc`, shared with ``training.make_results``.)"""

from __future__ import annotations

import base64
import functools
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from sketchdown.eval.plot import fmt_gflops, fmt_pct
from sketchdown.retrieval.gallery import gallery_metadata
from sketchdown.retrieval.retriever import RetrievalResult
from sketchdown.sketch.imageio import MAX_PIXELS, ImageError
from sketchdown.sketch.strokes import Sketch, stroke_sequence
from webapp.model import AppModel, arch_name
from webapp.session import THUMB_SUFFIX, Session, shown_path

COMPARE_EMPTY = "Pick a model under **Compare with** to see its ranked list next to the current one."


def ink_png_uri(ink: np.ndarray, display: int = 192) -> tuple[str, int]:
    """The network's input canvas as a data URI and its side in pixels: each network pixel becomes an
    integer block of ``round(display / side)`` pixels (nearest neighbour, shown unscaled), so a 32 px
    canvas looks as coarse as the network saw it."""
    a = np.asarray(ink, np.float32)
    if a.ndim == 3:
        a = a.mean(-1) if a.shape[-1] in (1, 3) else a.mean(0)
    img = (255 * (1 - np.clip(a, 0, 1))).astype(np.uint8)
    f = max(1, round(display / max(img.shape)))
    img = np.repeat(np.repeat(img, f, 0), f, 1)
    buf = io.BytesIO()
    Image.fromarray(img, "L").save(buf, "PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(), img.shape[0]


def canvas_reason(sketch: Sketch, res: RetrievalResult, how: str, full_canvas: int, lam: float | None) -> str:
    """One sentence on why this sketch got this canvas, from what the selector reads (the strokes and
    their points after simplification) and the ink the chosen canvas holds; then the full network's canvas."""
    n = len(sketch.strokes)
    # the selector's own input length when it ran; a forced or fixed canvas simplifies the strokes here
    pts = res.selector_steps or (len(stroke_sequence(sketch)) if n else 0)
    ink = float((np.asarray(res.canvas_image) > 0.1).mean())
    density = "sparse" if ink < 0.06 else ("moderate" if ink < 0.15 else "dense")
    seen = (f"{n} stroke{'s' * (n != 1)}, {pts} points after simplification" if n else "an image (no strokes)") \
        + f", {density} ink ({100 * ink:.0f}% of the {res.canvas} px canvas)"
    if how == "cascade" and res.cascade:
        c0, m0, t0 = res.cascade[0]
        if len(res.cascade) == 1:
            verdict = f"the {c0} px ranking was sure (top-1 leads by {m0:.3f} ≥ {t0:.3f}), so {c0} px is enough"
        elif t0 == float("inf"):
            verdict = f"at λ<sub>F</sub> = {lam:g} the cascade never stops at {c0} px, so it went on to {res.canvas} px"
        else:
            verdict = f"the {c0} px ranking was unsure (top-1 led by {m0:.3f} < {t0:.3f}), so the cascade went on to {res.canvas} px"
    elif how == "selector" and res.canvas_probs:
        biggest = max(res.canvas_probs)
        verdict = (f"detailed enough to need the largest canvas, {res.canvas} px" if res.canvas == biggest
                   else f"{res.canvas} px is enough at λ<sub>F</sub> = {lam:g}")
    elif how == "forced":
        verdict = f"you forced {res.canvas} px"
    else:
        verdict = f"{esc(res.model)} always draws at {res.canvas} px"
    return f"{seen}: {verdict}. The full network would draw it at {full_canvas} px."


def esc(s: Any) -> str:
    """``str(s)`` escaped for HTML text and double-quoted attributes."""
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


SELECTOR_EMPTY = (
    "<div class='sd-panel sd-empty'><div class='sd-badge sd-badge-idle'>canvas — px</div>"
    "<p>Draw on the canvas: the selector picks the resolution the network sees, live.</p></div>"
)
FLOPS_EMPTY = "<div class='sd-panel sd-empty'><div class='sd-kpi'><b>—</b> GFLOPs</div><p>FLOP counter: waiting for a sketch.</p></div>"


def selector_html(res: RetrievalResult, how: str, lam: float | None, reason: str = "") -> str:
    """The selector panel: the chosen canvas, why (``reason``, :func:`canvas_reason`), one bar per canvas
    (the selector's probability, or each cascade pass's lead against its stop margin), the abstraction gauge
    and the canvas as the network saw it at its true pixel grid; ``how`` is "cascade", "selector", "forced"
    or "fixed"."""
    probs = res.canvas_probs
    chosen = res.canvas
    if res.cascade:
        n = len(res.cascade)
        lam_txt = "" if lam is None else f" (λ<sub>F</sub> = {lam:g})"
        sub = (f"picked by the confidence cascade{lam_txt}: {n} pass{'es' * (n > 1)}, each counted in the FLOPs; "
               "a bar fills as the top-1 photo's lead nears the stop margin")
        rows = "".join(_bar_row(c, w, v, c == chosen) for c, w, v in _cascade_bars(res))
    else:
        if probs:
            sub = f"picked by the canvas selector (λ<sub>F</sub> = {lam:g}), {100 * probs.get(chosen, 0):.0f}% sure"
        elif how == "forced":
            sub = "forced by you (selector off)"
        else:
            sub = f"the fixed canvas of <b>{esc(res.model)}</b>"
        rows = "".join(_bar_row(c, 100 * (probs[c] if probs else 1.0), f"{100 * (probs[c] if probs else 1.0):.0f}%", c == chosen)
                       for c in (sorted(probs) if probs else [chosen]))
    if res.abstraction is not None:
        a = res.abstraction
        abstr = (
            f"<div class='sd-abs'><span>abstraction</span><span class='sd-gauge'><span style='left:{100 * a:.1f}%'></span></span>"
            f"<b>{a:.2f}</b></div><div class='sd-abs-scale'><span>detailed</span><span>abstract</span></div>"
        )
    else:
        abstr = "<div class='sd-abs sd-muted'>abstraction: — (estimated only by the selector)</div>"
    uri, side = ink_png_uri(res.canvas_image)
    why = f"<div class='sd-why'>{reason}</div>" if reason else ""
    return (
        f"<div class='sd-panel sd-selector{' sd-cascade' if res.cascade else ''}'>"
        "<div class='sd-sel-main'>"
        f"<div class='sd-sel-text'><div class='sd-badge'>canvas <b>{chosen}</b> px</div><div class='sd-sub'>{sub}</div>"
        f"{why}<div class='sd-bars'>{rows}</div>{abstr}</div>"
        f"<figure class='sd-netview'><img alt='the sketch as the network saw it' src='{uri}' width='{side}' height='{side}'/>"
        f"<figcaption>what the network saw: {chosen}×{chosen}</figcaption></figure>"
        "</div></div>"
    )


def _bar_row(canvas: int, width: float, value: str, chosen: bool) -> str:
    return (f"<div class='sd-bar-row{' sd-chosen' if chosen else ''}'><span class='sd-bar-label'>{canvas} px</span>"
            f"<span class='sd-bar'><span style='width:{width:.1f}%'></span></span><span class='sd-bar-val'>{value}</span></div>")


def _cascade_bars(res: RetrievalResult) -> list[tuple[int, float, str]]:
    """(canvas, bar width %, verdict) per cascade pass: how far the top-1 photo led against the stop margin."""
    assert res.cascade is not None
    out = []
    for i, (c, m, t) in enumerate(res.cascade):
        if t == float("inf"):
            last = i == len(res.cascade) - 1
            out.append((c, 100.0 * last, "last stage: answers" if last else f"{m:.3f}: never stops here at this λF"))
        else:
            out.append((c, min(100.0, 100 * m / max(t, 1e-9)),
                        f"{m:.3f} ≥ {t:.3f}: sure, stop" if m >= t else f"{m:.3f} < {t:.3f}: unsure, go on"))
    return out


def flops_html(res: RetrievalResult, s: Session) -> str:
    """The FLOP counter: this query's GFLOPs against the full network's, latency, and the session's totals."""
    save = res.saving_pct
    save_txt = f"{fmt_pct(save)}% fewer FLOPs" if save >= 0.5 else ("same as the full network" if save > -0.5 else f"{-save:.0f}% more FLOPs")
    pick = "earlier passes" if res.cascade else "selector"
    parts = [f"{name}: {1000 * g:.2g} MFLOPs" for name, g in ((pick, res.selector_gflops), ("HOG", res.hog_gflops)) if g > 0]
    if res.hog_alpha > 0:
        parts[-1] += f", weight {res.hog_alpha:g}"
    sel = f" ({', '.join(parts)})" if parts else ""
    return (
        "<div class='sd-panel sd-flops'>"
        "<div class='sd-kpis'>"
        f"<div class='sd-kpi'><b class='sd-q-gflops'>{fmt_gflops(res.gflops)}</b><span>GFLOPs this query{sel}</span></div>"
        f"<div class='sd-kpi'><b>{fmt_gflops(res.full_gflops)}</b><span>GFLOPs full network, same sketch</span></div>"
        f"<div class='sd-kpi sd-save'><b>{fmt_pct(save) if save >= 0.5 else f'{save:.0f}'}%</b><span>{save_txt}</span></div>"
        f"<div class='sd-kpi'><b>{res.latency_ms:.0f}</b><span>ms on this CPU</span></div>"
        "</div>"
        f"<div class='sd-session'>This session: <b>{s.queries}</b> retrievals (live updates while you draw count too) · <b>{fmt_gflops(s.gflops)}</b> GFLOPs used vs "
        f"<b>{fmt_gflops(s.full_gflops)}</b> for the full network · saved <b>{fmt_pct(s.saving_pct)}%</b></div>"
        "</div>"
    )


@functools.lru_cache(maxsize=16)
def photo_credits(photo_dir: str) -> dict[str, str]:
    """Photo file name -> "author, licence" for the photos whose ``metadata.json`` (beside the folder or
    in it) names an author: the default gallery's GCompris photos, whose CC-BY licences ask for credit
    where the photo is shown. Empty for folders without such a file."""
    # credits are looked up here rather than stored in the index so the index format stays as measured
    _, items = gallery_metadata(photo_dir)
    return {Path(str(it["file"])).name: f"{it['author']}, {it.get('license') or 'licence unknown'}"
            for it in items if it.get("author")}


RANK_COLOURS = ("#d62728", "#1f77b4")


def rank_curve_html(curves: dict[str, list[int]], total: int, target: str, gallery_size: int) -> str:
    """A small SVG line chart: the target photo's rank (log scale, 1 at the top) after each of ``total``
    strokes, one line per model in ``curves`` (label -> ranks so far); each line carries its ranks in
    ``data-ranks`` for scripts and tests."""
    w, h, left, top, bottom = 360, 150, 34, 10, 24
    iw, ih = w - left - 10, h - top - bottom
    span = np.log(max(2, gallery_size))

    def xy(i: int, r: int) -> tuple[float, float]:
        x = left + (iw * (i - 1) / max(1, total - 1) if total > 1 else iw / 2)
        return x, top + ih * float(np.log(max(1, r))) / span

    grid = ""
    for r in (1, 10, 100):
        if r <= gallery_size:
            y = xy(1, r)[1]
            grid += (f"<line x1='{left}' x2='{left + iw}' y1='{y:.1f}' y2='{y:.1f}' class='sd-grid'/>"
                     f"<text x='{left - 4}' y='{y + 4:.1f}' text-anchor='end'>#{r}</text>")
    lines, legend = "", []
    for (label, ranks), colour in zip(curves.items(), RANK_COLOURS, strict=False):
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i + 1, r) for i, r in enumerate(ranks)))
        dots = "".join(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3' fill='{colour}'/>"
                       for x, y in (xy(i + 1, r) for i, r in enumerate(ranks)))
        lines += (f"<g class='sd-rank-line' data-label='{esc(label)}' data-ranks='{json.dumps(ranks)}'>"
                  f"<polyline points='{pts}' fill='none' stroke='{colour}' stroke-width='2'/>{dots}</g>")
        legend.append(f"<span style='color:{colour}'>■</span> {esc(label)}: #{ranks[-1] if ranks else '—'}")
    ticks = "".join(f"<text x='{xy(i, 1)[0]:.1f}' y='{h - 8}' text-anchor='middle'>{i}</text>" for i in range(1, total + 1))
    return (
        "<div class='sd-panel sd-rank'>"
        f"<div class='sd-rank-title'>Rank of the traced photo <b>{esc(target)}</b> after each stroke "
        f"(of {gallery_size}; 1 = top)</div>"
        f"<svg viewBox='0 0 {w} {h}' width='{w}' height='{h}' role='img' aria-label='rank after each stroke'>"
        f"{grid}{lines}{ticks}</svg>"
        f"<div class='sd-rank-legend'>{' · '.join(legend)} · stroke →</div></div>"
    )


def category_label(res: RetrievalResult, counts: dict[str, int] | None) -> dict[str, float]:
    """The recognised categories for ``gr.Label``: "chair · 7 photos" -> probability (counts: default gallery)."""
    def name(c: str) -> str:
        n = (counts or {}).get(c)
        return c.replace("_", " ") + (f" · {n} photo{'s' * (n != 1)} in the gallery" if n else "")
    return {name(c): p for c, p in res.categories}


def gallery_items(res: RetrievalResult) -> list[tuple[str, str]]:
    """(photo path, caption) per hit for ``gr.Gallery``: rank, label, score and the photographer's credit.
    An uploaded photo is shown as its inline SVG thumbnail (never as a file Gradio would copy and serve);
    one deleted meanwhile is left out."""
    out = []
    for h in res.hits:
        p = Path(h.path)
        shown = shown_path(p)
        if shown is None:
            continue
        credit = photo_credits(str(p.parent)).get(p.name)
        if credit and not credit.startswith("©"):  # some authors already write "© 2014 ..."
            credit = "© " + credit
        out.append((shown, f"#{h.rank} {h.label or p.stem} · {h.score:.2f}" + (f" · {credit}" if credit else "")))
    return out


THUMB_SIDE = 384  # px, the longer side of an uploaded photo's thumbnail (~15-30 kB of JPEG)


def write_thumbnail(photo: Path, thumbs: Path, side: int = THUMB_SIDE) -> Path:
    """Save ``thumbs/<name>.svg``: an SVG holding a JPEG thumbnail of ``photo`` (longer side <= ``side`` px)
    as a data URI. ``gr.Gallery`` sends an SVG inline in the response, so the photo never reaches Gradio's
    shared file cache. Raises :class:`ImageError` when the photo cannot be read."""
    try:
        with Image.open(photo) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ImageError(f"{photo.name} is too large ({im.width}x{im.height} pixels)")
            im.draft("RGB", (side, side))  # JPEG: decode at 1/2..1/8 scale, far cheaper than the full image
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "P", "PA"):
                rgba = im.convert("RGBA")
                im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            im = im.convert("RGB")
            im.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=2.0)
    except ImageError:
        raise
    except Exception as e:  # PIL raises many types for bad data
        raise ImageError(f"{photo.name}: no thumbnail ({type(e).__name__})") from None
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=82)
    w, h = im.size
    uri = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    out = thumbs / (photo.name + THUMB_SUFFIX)
    out.write_text(f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">'
                   f'<image width="{w}" height="{h}" href="{uri}"/></svg>', "ascii")
    return out


def compare_header(a: RetrievalResult, b: RetrievalResult, k: int) -> str:
    """Markdown above the two comparison lists: each model's canvas and GFLOPs, and their top-k overlap."""
    shared = len({h.index for h in a.hits} & {h.index for h in b.hits})

    def desc(r: RetrievalResult) -> str:
        how = "cascade" if r.cascade else "selector" if r.canvas_probs else "fixed"
        return f"**{r.model}** · canvas {r.canvas} px ({how}) · {fmt_gflops(r.gflops)} GFLOPs"

    return f"Left: {desc(a)}  \nRight: {desc(b)}  \nPhotos in both top-{k} lists: **{shared}** of {min(k, len(a.hits))}"


def header_markdown(m: AppModel) -> str:
    """The page header (Markdown): what the app does, the weight set's branches and canvases, the gallery size."""
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

