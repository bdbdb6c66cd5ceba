"""The FLOPs-vs-Acc@1 plot of result rows: one line per sketch branch (canvases along it) and per
selector (its lambda_F values along it), ``+HOG`` rows their own lines. Drawn for RESULTS.md
(``training.make_results``) and for the app's teaching panel.

matplotlib is optional: it is imported when a plot is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sketchdown.eval.rows import HOG_TAG, RowKey, Series

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def fmt_gflops(x: float | None) -> str:
    """GFLOPs for display: 3 significant digits ("—" for None, scientific below 0.001)."""
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}" if x >= 0.001 else f"{x:.2e}"


def fmt_pct(x: float) -> str:
    """A percentage for display, with the decimals it needs not to round to 0 or 100 when it is neither:
    a student at 0.05% of a 40-GFLOP full network saves "99.95%", not "100%" (one decimal at least)."""
    for nd in (1, 2, 3):
        if 0.0 < x < 100.0 and (round(x, nd) in (0.0, 100.0)):
            continue
        return f"{x:.{nd}f}"
    return f"{x:.3f}"


def _plottable(rows: Any) -> list[dict]:
    """The rows with a numeric ``acc@1`` and a positive ``gflops_per_query``."""
    if not isinstance(rows, list):
        return []
    return [r for r in rows if isinstance(r, dict) and isinstance(r.get("acc@1"), (int, float))
            and isinstance(r.get("gflops_per_query"), (int, float)) and r["gflops_per_query"] > 0]


def metric_rows(metrics: dict[str, Any] | None) -> tuple[str, list[dict]]:
    """(dataset name, plottable rows) from a manifest's ``metrics``: ``{"rows": [...]}`` (name "") or
    ``{dataset: {"rows": [...]}}`` (the first dataset with plottable rows); ("", []) when none."""
    if not isinstance(metrics, dict):
        return "", []
    cands: list[tuple[str, Any]] = [("", metrics.get("rows"))] + [
        (str(k), v.get("rows")) for k, v in metrics.items() if isinstance(v, dict)
    ]
    for name, rows in cands:
        ok = _plottable(rows)
        if ok:
            return name, ok
    return "", []


def _series(label: str, weights: bool) -> Series:
    try:
        return RowKey.parse(label).series(weights)
    except ValueError:  # not a row label: a point of its own
        return Series(label, "")


# Published points of *Sketch Down the FLOPs* (Sain et al., CVPR 2025) drawn for reference: the full
# network's (GFLOPs, ChairV2 Acc@1), and the GFLOPs of its selector-driven student (no ChairV2 Acc@1 given).
PAPER_FULL = (40.18, 45.65, "paper: VGG-16 Triplet-SN (full network)")
PAPER_STUDENT_GFLOPS = (0.254, "paper: SketchyNetV2 + selector")
# where a point's tag may go, in points from the point, tried in this order
_TAG_OFFSETS = ((4, 4), (4, -11), (-16, 4), (-16, -11), (4, 13), (4, -20), (-16, 13), (-16, -20))


def flops_vs_acc(
    results: Sequence[dict] | dict[str, Any] | None,
    *,
    current: float | None = None,
    full: float | None = None,
    title: str | None = None,
    paper: bool = True,
    figsize: tuple[float, float] = (8.0, 3.8),
    dpi: int = 100,
    legend_loc: str = "outside",
) -> Figure | None:
    """FLOPs (log x) vs Acc@1 of result rows; None when no row has both.

    results: result rows (dicts with ``model`` = a :class:`~sketchdown.eval.rows.RowKey` label,
        ``acc@1`` in percent and ``gflops_per_query`` > 0, as :func:`~sketchdown.eval.evaluate.evaluate`
        returns them), or a manifest's ``metrics`` dict (``ModelBundle.metrics``: ``{dataset: {"rows": [...]}}``
        or ``{"rows": [...]}``; the first dataset with rows is drawn and named in the default title).
    current: this query's GFLOPs (a red vertical line), e.g. ``RetrievalResult.gflops``.
    full: the full network's GFLOPs on the same sketch (a grey dashed line), ``RetrievalResult.full_gflops``.
    title: the plot's title (default "FLOPs vs accuracy on <dataset>").
    paper: draw the paper's published full network (a star) and its student's GFLOPs (a dotted line).
    figsize, dpi: as matplotlib takes them. legend_loc: ``"outside"`` (right of the axes, clear of the
        curves) or a matplotlib location inside them.

    One curve per family (a branch at fixed canvases, or a branch with the selector over lambda_F),
    its points in FLOPs order and tagged with their canvas or lambda_F; a family's network-alone curve is
    dashed with hollow markers, its ``+HOG`` curve solid in the same colour. Tags that would overlap
    another are moved, or dropped when no place is free. The legend names the weight set only when the
    rows come from several. Returns a ``matplotlib.figure.Figure`` (no pyplot state: safe in a server).
    """
    name, rows = metric_rows(results) if isinstance(results, dict) else ("", _plottable(list(results or [])))
    if not rows:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)  # a renderer to measure tags with
    ax = fig.add_subplot()
    tags = _draw_curves(ax, _curves(rows))
    if paper:
        _draw_paper(ax)
    if full:
        ax.axvline(full, color="gray", ls="--", lw=0.8, label="full network (this sketch)")
    if current:
        ax.axvline(current, color="crimson", lw=1.6, label=f"this query: {fmt_gflops(current)} GFLOPs")
    ax.set_xscale("log")
    _label_axes(ax, title or f"FLOPs vs accuracy{f' on {name}' if name else ''}", legend_loc)
    fig.tight_layout()
    place_tags(fig, tags)
    return fig


def _curves(rows: list[dict]) -> dict[str, list[tuple[float, float, str]]]:
    """Line name -> its points (GFLOPs, Acc@1, tag), sorted by GFLOPs."""
    labels = [str(r.get("model", "?")) for r in rows]
    several = len({lb.split("/", 1)[0] for lb in labels if "/" in lb}) > 1
    curves: dict[str, list[tuple[float, float, str]]] = {}
    for r, lb in zip(rows, labels, strict=True):
        line, tag = _series(lb, several)
        curves.setdefault(line, []).append((float(r["gflops_per_query"]), float(r["acc@1"]), tag))
    return {k: sorted(v) for k, v in curves.items()}


def _draw_curves(ax: Any, curves: dict[str, list[tuple[float, float, str]]]) -> list[Any]:
    """Draw each curve (colour per family, style per network-alone / +HOG); returns the point tags."""
    colours: dict[str, Any] = {}
    tags = []
    for line, pts in curves.items():
        family = line.removesuffix(HOG_TAG)
        colour = colours.setdefault(family, f"C{len(colours) % 10}")
        hog = line.endswith(HOG_TAG)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if len(pts) > 1 else "s", color=colour,
                ls="-" if hog else "--", mfc=colour if hog else "white", label=line)
        tags += [ax.annotate(t, (x, y), fontsize=7, xytext=_TAG_OFFSETS[0], textcoords="offset points", color=colour)
                 for x, y, t in pts if t]
    return tags


def _draw_paper(ax: Any) -> None:
    gf, acc, text = PAPER_FULL
    ax.plot([gf], [acc], marker="*", ms=11, color="black", ls="none", label=f"{text}: {gf:g} GFLOPs")
    gf, text = PAPER_STUDENT_GFLOPS
    ax.axvline(gf, color="black", ls=":", lw=0.9, label=f"{text}: {gf:g} GFLOPs")


def place_tags(fig: Figure, tags: list[Any]) -> None:
    """Move each point tag to the first offset (``_TAG_OFFSETS``) where its box overlaps no tag placed
    before it and stays inside the axes; hide it when there is none (the legend still names the curve)."""
    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    for tag in tags:
        axes_box = tag.axes.get_window_extent(renderer)
        for off in _TAG_OFFSETS:
            tag.xyann = off
            box = tag.get_window_extent(renderer)
            inside = axes_box.x0 <= box.x0 and box.x1 <= axes_box.x1 and axes_box.y0 <= box.y0 and box.y1 <= axes_box.y1
            if inside and not any(box.overlaps(b) for b in placed):
                placed.append(box)
                break
        else:
            tag.set_visible(False)


def _label_axes(ax: Any, title: str, legend_loc: str) -> None:
    """Titles, grid, legend (outside the axes, right, unless ``legend_loc`` names a place inside), and
    plain numbers on the log axis (0.05, not 5x10^-2: GFLOPs are read off it; minor ticks at 2 and 5 only)."""
    from matplotlib.ticker import FuncFormatter

    ax.set_xlabel("GFLOPs per query (sketch branch, selector included; log)")
    ax.set_ylabel("Acc@1 (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    ax.tick_params(axis="x", which="minor", labelsize=7)
    if legend_loc == "outside":
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    else:
        ax.legend(fontsize=7, loc=legend_loc)
