"""The FLOPs-vs-accuracy plot on a small hand-made table: sorted curves, styles per kind, the paper's
points, and point tags that never overlap (checked on their rendered bounding boxes)."""

from __future__ import annotations

import itertools

import pytest

pytest.importorskip("matplotlib")

from sketchdown.eval.plot import PAPER_FULL, flops_vs_acc  # noqa: E402

# rows in a scrambled order, as results files list them (network alone and +HOG interleaved)
ROWS = [
    {"model": "w/student@128+HOG", "acc@1": 52.0, "gflops_per_query": 0.2529},
    {"model": "w/student@32", "acc@1": 9.0, "gflops_per_query": 0.0163},
    {"model": "w/teacher@224", "acc@1": 34.7, "gflops_per_query": 1.1511},
    {"model": "w/student@96+HOG", "acc@1": 51.1, "gflops_per_query": 0.1432},
    {"model": "w/student@128", "acc@1": 19.2, "gflops_per_query": 0.2514},
    {"model": "w/student+selector(lambda_F=0.1)+HOG", "acc@1": 50.8, "gflops_per_query": 0.1408},
    {"model": "w/student@32+HOG", "acc@1": 44.0, "gflops_per_query": 0.0179},
    {"model": "w/student+selector(lambda_F=0)+HOG", "acc@1": 51.1, "gflops_per_query": 0.1458},
    {"model": "w/student@96", "acc@1": 17.0, "gflops_per_query": 0.1416},
    {"model": "w/student+selector(lambda_F=0.2)+HOG", "acc@1": 44.0, "gflops_per_query": 0.0195},
    {"model": "w/teacher@224+HOG", "acc@1": 51.7, "gflops_per_query": 1.1526},
]


def _line_of(label: str) -> str:
    """The curve a row belongs to, by hand: drop the weight set and the canvas or lambda_F."""
    model = label.removeprefix("w/")
    hog = model.endswith("+HOG")
    model = model.removesuffix("+HOG").split("@")[0]
    if "+selector(" in model:
        model = model.split("(")[0]
    return model + ("+HOG" if hog else "")


def _curves(fig):
    ax = fig.axes[0]
    return {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith(("paper", "full", "this", "_"))}


def test_one_sorted_curve_per_family_and_kind() -> None:
    fig = flops_vs_acc(ROWS)
    curves = _curves(fig)
    assert set(curves) == {"student", "student+HOG", "teacher", "teacher+HOG", "student+selector+HOG"}
    for name, ln in curves.items():
        xs = list(ln.get_xdata())
        assert xs == sorted(xs), name  # no zig-zag back across the log axis
        want = sorted((r["gflops_per_query"], r["acc@1"]) for r in ROWS if _line_of(r["model"]) == name)
        assert list(zip(xs, ln.get_ydata(), strict=True)) == want
    # network alone dashed with hollow markers, +HOG solid, each pair in one colour
    assert curves["student"].get_linestyle() == "--" and curves["student"].get_markerfacecolor() == "white"
    assert curves["student+HOG"].get_linestyle() == "-"
    assert curves["student"].get_color() == curves["student+HOG"].get_color() != curves["teacher"].get_color()


def test_paper_points_and_the_query_are_marked() -> None:
    ax = flops_vs_acc(ROWS, current=0.14, full=1.15).axes[0]
    star = [ln for ln in ax.get_lines() if ln.get_label().startswith("paper: VGG-16")]
    assert len(star) == 1 and (star[0].get_xdata()[0], star[0].get_ydata()[0]) == PAPER_FULL[:2]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "this query: 0.14 GFLOPs" in labels and any(lb.startswith("paper: SketchyNetV2") for lb in labels)
    assert not any(lb.startswith("paper") for lb in [t.get_text() for t in flops_vs_acc(ROWS, paper=False).axes[0].get_legend().get_texts()])


@pytest.mark.parametrize("figsize", [(8.0, 3.8), (5.0, 3.0)])
def test_point_tags_do_not_overlap(figsize) -> None:
    fig = flops_vs_acc(ROWS, figsize=figsize)
    renderer = fig.canvas.get_renderer()
    tags = [t for t in fig.axes[0].texts if t.get_visible()]
    boxes = [t.get_window_extent(renderer) for t in tags]
    assert len(tags) >= 6  # most of the 11 points keep a tag, even crowded
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)
    axes_box = fig.axes[0].get_window_extent(renderer)
    assert all(axes_box.x0 <= b.x0 and b.x1 <= axes_box.x1 for b in boxes)
    # every visible tag names its own point: a canvas or a lambda_F
    assert {t.get_text() for t in tags} <= {"32", "96", "128", "224", "λ=0", "λ=0.1", "λ=0.2"}


def test_plot_only_redraws_from_stored_rows(tmp_path) -> None:
    from pathlib import Path

    from training.make_results import plot_stored

    repo = Path(__file__).resolve().parents[1]
    png = tmp_path / "flops_vs_acc.png"
    rows = plot_stored([str(repo / "weights" / "default")], "chairv2-test", png)
    assert rows and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match="no stored rows"):
        plot_stored([str(repo / "weights" / "default")], "no-such-dataset", png)


def test_fmt_pct_never_rounds_a_cost_away() -> None:
    """A 0.25-GFLOP query against a 40-GFLOP full network saves 99.37%, never "100%"; a real 0 or 100 stays."""
    from sketchdown.eval.plot import fmt_pct

    assert [fmt_pct(x) for x in (87.5, 99.37, 99.954, 0.046, 0.0, 100.0, 50)] == [
        "87.5", "99.4", "99.95", "0.05", "0.0", "100.0", "50.0"]
    for x in (99.95, 99.991, 0.004, 0.01):  # the shown value is strictly inside (0, 100) when x is
        assert 0 < float(fmt_pct(x)) < 100
