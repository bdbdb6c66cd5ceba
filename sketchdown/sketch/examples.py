"""Hand-made example sketches for the app: a few simple objects as vector strokes that the drawing
canvas can replay stroke by stroke (and that tests and benchmarks can send as stroke JSON).

Each one finds a photo of its kind among the default gallery's top 3 (``tests/test_examples.py``); a
side-view cat was dropped because it did not (its first cat photo was #27: the gallery's side-view
four-legged animals are mostly hoofed, and no free side-view house cat photo was found).

Every example is a list of strokes, each a list of ``[x, y]`` points on the app's 400 x 400 drawing
canvas, in drawing order, densified to one point every few pixels so a replay looks like drawing.
"""

from __future__ import annotations

import json
import math

CANVAS = 400  # the app's drawing canvas, pixels
STEP = 6.0  # densify polylines to about one point per STEP pixels

Point = tuple[float, float]


def _dense(pts: list[Point], step: float = STEP) -> list[list[float]]:
    """A polyline through ``pts`` with extra points so no segment is longer than ``step``."""
    out: list[list[float]] = [[round(pts[0][0], 1), round(pts[0][1], 1)]]
    for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:], strict=True):
        n = max(1, math.ceil(math.hypot(x1 - x0, y1 - y0) / step))
        for i in range(1, n + 1):
            t = i / n
            out.append([round(x0 + t * (x1 - x0), 1), round(y0 + t * (y1 - y0), 1)])
    return out


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 48) -> list[Point]:
    """Points of an elliptic arc from angle ``a0`` to ``a1`` (degrees, 0 = +x, clockwise on screen)."""
    return [
        (cx + rx * math.cos(math.radians(a0 + (a1 - a0) * i / n)), cy + ry * math.sin(math.radians(a0 + (a1 - a0) * i / n)))
        for i in range(n + 1)
    ]


def _circle(cx: float, cy: float, r: float, n: int = 36) -> list[Point]:
    return _arc(cx, cy, r, r, 0, 360, n)


def _two_disc_outline(c1: Point, r1: float, c2: Point, r2: float, origin: Point, n: int = 90) -> list[Point]:
    """Outline of the union of two overlapping discs, traced around ``origin`` (inside both)."""
    pts = []
    for i in range(n + 1):
        a = 2 * math.pi * i / n
        dx, dy = math.cos(a), math.sin(a)
        best = 0.0
        for (cx, cy), r in ((c1, r1), (c2, r2)):
            ox, oy = origin[0] - cx, origin[1] - cy
            b = ox * dx + oy * dy
            disc = b * b - (ox * ox + oy * oy - r * r)
            if disc >= 0:
                best = max(best, -b + math.sqrt(disc))
        pts.append((origin[0] + best * dx, origin[1] + best * dy))
    return pts


def _fish() -> list[list[list[float]]]:
    return [
        _dense(_arc(185, 200, 115, 62, 10, 350, 60)),  # body, open at the tail
        _dense([(298, 189), (362, 140), (352, 200), (362, 260), (298, 211)]),  # tail
        _dense(_circle(118, 186, 9, 16)),  # eye
        _dense(_arc(150, 200, 22, 40, -70, 70, 16)),  # gill
        _dense([(160, 141), (205, 100), (238, 145)]),  # dorsal fin
        _dense([(75, 210), (95, 214)]),  # mouth
    ]


def _cat_face() -> list[list[list[float]]]:
    return [
        _dense(_arc(200, 225, 115, 105, -60, 240, 64)),  # head, open between the ears
        _dense([(143, 134), (112, 52), (183, 121)]),  # left ear
        _dense([(217, 121), (288, 52), (257, 134)]),  # right ear
        _dense(_circle(158, 205, 13, 16)),  # eyes
        _dense(_circle(242, 205, 13, 16)),
        _dense([(188, 245), (212, 245), (200, 259), (188, 245)]),  # nose
        _dense([(200, 259), (200, 272), (183, 284)]),  # mouth
        _dense([(200, 272), (217, 284)]),
        _dense([(165, 255), (95, 240)]),  # whiskers
        _dense([(165, 264), (92, 268)]),
        _dense([(235, 255), (305, 240)]),
        _dense([(235, 264), (308, 268)]),
    ]


def _guitar() -> list[list[list[float]]]:
    body = _two_disc_outline((200, 298), 80, (200, 200), 58, (200, 250))
    return [
        _dense(body),  # body
        _dense(_circle(200, 262, 22, 24)),  # sound hole
        _dense([(191, 143), (191, 48)]),  # neck
        _dense([(209, 143), (209, 48)]),
        _dense([(186, 48), (184, 8), (216, 8), (214, 48), (186, 48)]),  # head
        _dense([(176, 328), (224, 328)]),  # bridge
        _dense([(200, 328), (200, 48)]),  # a string
    ]


def _chair() -> list[list[list[float]]]:
    return [
        _dense([(140, 225), (140, 60), (260, 60), (260, 225)]),  # back frame
        _dense([(140, 105), (260, 105)]),  # back rail
        _dense([(120, 225), (280, 225), (305, 262), (95, 262), (120, 225)]),  # seat
        _dense([(100, 262), (100, 380)]),  # front legs
        _dense([(300, 262), (300, 380)]),
        _dense([(145, 262), (145, 345)]),  # back legs
        _dense([(255, 262), (255, 345)]),
    ]


EXAMPLES: dict[str, list[list[list[float]]]] = {
    "fish": _fish(),
    "cat face": _cat_face(),
    "guitar": _guitar(),
    "chair": _chair(),
}


def example_json(name: str, n_strokes: int | None = None) -> str:
    """The app's stroke JSON of example ``name`` (its first ``n_strokes`` strokes if given)."""
    strokes = EXAMPLES[name]
    return json.dumps(strokes if n_strokes is None else strokes[: max(1, n_strokes)])


__all__ = ["CANVAS", "EXAMPLES", "example_json"]
