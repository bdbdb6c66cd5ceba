"""Safe image reading: one clear error, naming the file, for anything that is not a readable image.

The header is read first: an image over ``MAX_PIXELS`` is refused before any pixel is decoded, and with
``max_side`` a large image is decoded reduced (JPEG: DCT scaling via ``draft``, 1/2 to 1/8; others: a
box ``reduce`` right after decoding, before any full-size mode conversion), so a near-limit photo costs
what its reduced size needs rather than hundreds of MB.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

MAX_PIXELS = 40_000_000  # ~6300x6300; larger is refused from the header, before decoding (decompression bombs)
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
_STRIPE_PIXELS = 4_000_000  # modes without a native reduce (palette, 1-bit, 16-bit) are converted this much at a time


class ImageError(ValueError):
    """The file is not a readable image. ``str(err)`` is a one-line message naming the file."""


@dataclass(frozen=True)
class Decoded:
    """An image as :func:`read_image` returns it.

    image: RGB, possibly reduced; size: (width, height) in the file's header, pixels; format: PIL's name
    ("JPEG", "PNG", ...); exif: the raw EXIF block or None; pixels: how many pixels were decoded."""

    image: Image.Image
    size: tuple[int, int]
    format: str | None
    exif: bytes | None
    pixels: int


def _clean(msg: str, name: str) -> str:
    """PIL's messages name in-memory files by their object address ("<_io.BytesIO object at 0x...>")."""
    return re.sub(r"<[^<>]* at 0x[0-9a-fA-F]+>", name, msg)[:200]


def read_image(src: str | Path | bytes, *, name: str | None = None, max_side: int | None = None,
               before_decode: Callable[[int], None] | None = None) -> Decoded:
    """Open and decode an image (path or bytes); RGBA/LA/P are composited on white.

    name: shown in messages (default: the path's name, "image" for bytes). max_side: when set, an image
    whose longer side exceeds it is decoded reduced to a longer side of at least ``max_side`` px (at most
    ~2x it), never upsampled. before_decode: called with the number of pixels about to be decoded, after
    the header is checked; whatever it raises (a budget refusal) propagates unchanged.
    Raises :class:`ImageError` for missing, non-image, truncated, or oversized (> MAX_PIXELS) inputs."""
    name = name or ("image" if isinstance(src, bytes) else Path(src).name)
    try:
        fp = io.BytesIO(src) if isinstance(src, bytes) else open(src, "rb")  # noqa: SIM115
    except OSError as e:
        raise ImageError(f"cannot open {name}: {e.strerror or e}") from None
    with fp, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        im = _header(fp, name)
        size, fmt = im.size, im.format
        if max_side and max(size) > max_side:
            s = max_side / max(size)  # JPEG only: the smallest DCT scale with both sides >= these
            im.draft(im.mode if im.mode in ("L", "RGB") else "RGB", (max(1, round(size[0] * s)), max(1, round(size[1] * s))))
        decoded = im.width * im.height
        if before_decode is not None:
            before_decode(decoded)
        try:
            exif = im.info.get("exif")
            im.load()
            im = _to_rgb(_reduce(im, max(1, max(im.size) // max_side) if max_side else 1))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(f"{name} is too large to decode safely") from None
        except Exception as e:  # PIL raises many types for bad data (OSError, SyntaxError, ...)
            raise ImageError(f"{name} is not a readable image ({type(e).__name__}: {_clean(str(e), name)})") from None
    return Decoded(im, size, fmt, exif if isinstance(exif, bytes) else None, decoded)


def _header(fp: io.IOBase, name: str) -> Image.Image:
    """The lazily opened image (only its header read), refused when it would decode to over MAX_PIXELS."""
    try:
        im = Image.open(fp)
    except Image.UnidentifiedImageError:
        raise ImageError(f"{name} is not a readable image (not a jpg, png, webp, bmp or gif file)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name} is too large (over {MAX_PIXELS // 10**6} megapixels)") from None
    except Exception as e:
        raise ImageError(f"{name} is not a readable image ({type(e).__name__}: {_clean(str(e), name)})") from None
    if im.width * im.height > MAX_PIXELS:
        raise ImageError(f"{name} is too large ({im.width}x{im.height} pixels; at most {MAX_PIXELS // 10**6} megapixels)")
    return im


def _reduce(im: Image.Image, factor: int) -> Image.Image:
    """``im`` shrunk by an integer ``factor`` (box filter). Modes ``reduce`` cannot take are converted in
    stripes, so the full-size image never exists in RGBA."""
    if factor < 2:
        return im
    try:
        return im.reduce(factor)
    except ValueError:  # "image has wrong mode": P, 1, I;16, ...
        pass
    w, h = im.size
    out = Image.new("RGBA", (-(-w // factor), -(-h // factor)))
    step = factor * max(1, _STRIPE_PIXELS // (w * factor))
    for y in range(0, h, step):
        out.paste(im.crop((0, y, w, min(h, y + step))).convert("RGBA").reduce(factor), (0, y // factor))
    return out


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("RGBA", "LA", "P", "PA"):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, rgba)
    return im if im.mode == "RGB" else im.convert("RGB")


def open_image(src: str | Path | bytes, *, name: str | None = None, max_side: int | None = None) -> Image.Image:
    """The RGB image of :func:`read_image` (full size unless ``max_side`` is given)."""
    return read_image(src, name=name, max_side=max_side).image


def to_rgb_array(im: Image.Image) -> np.ndarray:
    """``(H, W, 3)`` uint8."""
    return np.asarray(im.convert("RGB"), dtype=np.uint8)
