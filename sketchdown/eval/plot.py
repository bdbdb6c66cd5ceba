"""The FLOPs-vs-Acc@1 plot of result rows: one line per sketch branch (canvases along it) and per
selector (its lambda_F values along it), ``+HOG`` rows their own lines. Drawn for RESULTS.md
(``training.make_results``) and for the app's teaching panel.

matplotlib is optional: it is imported when a plot is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sketchdown.eval.rows import RowKey, Series

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


def flops_vs_acc(
    results: Sequence[dict] | dict[str, Any] | None,
    *,
    current: float | None = None,
    full: float | None = None,
    title: str | None = None,
    reference: tuple[float, str] | None = None,
    figsize: tuple[float, float] = (6.4, 3.6),
    dpi: int = 100,
    legend_loc: str = "lower right",
) -> Figure | None:
    """FLOPs (log x) vs Acc@1 of result rows; None when no row has both.

    results: result rows (dicts with ``model`` = a :class:`~sketchdown.eval.rows.RowKey` label,
        ``acc@1`` in percent and ``gflops_per_query`` > 0, as :func:`~sketchdown.eval.evaluate.evaluate`
        returns them), or a manifest's ``metrics`` dict (``ModelBundle.metrics``: ``{dataset: {"rows": [...]}}``
        or ``{"rows": [...]}``; the first dataset with rows is drawn and named in the default title).
    current: this query's GFLOPs (a red vertical line), e.g. ``RetrievalResult.gflops``.
    full: the full network's GFLOPs on the same sketch (a grey dashed line), ``RetrievalResult.full_gflops``.
    title: the plot's title (default "FLOPs vs accuracy on <dataset>").
    reference: (Acc@1, text): a published result drawn as a horizontal line.
    figsize, dpi, legend_loc: as matplotlib takes them.

    The legend names the weight set only when the rows come from several. Returns a
    ``matplotlib.figure.Figure`` (no pyplot state: safe in a server; ``fig.savefig(path)`` writes it).
    """
    name, rows = metric_rows(results) if isinstance(results, dict) else ("", _plottable(list(results or [])))
    if not rows:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    ax = fig.add_subplot()
    labels = [str(r.get("model", "?")) for r in rows]
    several = len({lb.split("/", 1)[0] for lb in labels if "/" in lb}) > 1
    series: dict[str, list[tuple[float, float, str]]] = {}
    for r, lb in zip(rows, labels, strict=True):
        line, tag = _series(lb, several)
        series.setdefault(line, []).append((float(r["gflops_per_query"]), float(r["acc@1"]), tag))
    for line, pts in series.items():
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-" if len(pts) > 1 else "s", label=line)
        for x, y, t in pts:
            ax.annotate(t, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if full:
        ax.axvline(full, color="gray", ls="--", lw=0.8, label="full network (this sketch)")
    if current:
        ax.axvline(current, color="crimson", lw=1.6, label=f"this query: {fmt_gflops(current)} GFLOPs")
    ax.set_xscale("log")
    if reference is not None:
        ax.axhline(reference[0], color="gray", ls="--", lw=0.8)
        ax.text(ax.get_xlim()[0], reference[0] + 0.25, reference[1], fontsize=7, color="gray")
    _label_axes(ax, title or f"FLOPs vs accuracy{f' on {name}' if name else ''}", legend_loc)
    fig.tight_layout()
    return fig


def _label_axes(ax: Any, title: str, legend_loc: str) -> None:
    """Titles, grid, legend, and plain numbers on the log axis (0.05, not 5x10^-2: GFLOPs are read off it)."""
    from matplotlib.ticker import FuncFormatter

    ax.set_xlabel("GFLOPs per query (sketch branch, selector included; log)")
    ax.set_ylabel("Acc@1 (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(fmt)
    ax.xaxis.set_minor_formatter(fmt)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.legend(fontsize=7, loc=legend_loc)
