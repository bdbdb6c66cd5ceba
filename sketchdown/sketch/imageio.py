"""Safe image reading: one clear error for anything that is not a readable image."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

MAX_PIXELS = 40_000_000  # ~6300x6300; larger is refused rather than decoded (decompression bombs)
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


class ImageError(ValueError):
    """The file is not a readable image. ``str(err)`` is a one-line message."""


def open_image(src: str | Path | bytes) -> Image.Image:
    """Open and fully decode an image (path or bytes); RGBA/LA/P are composited on white.

    Returns an RGB PIL image. Raises :class:`ImageError` for missing, non-image, truncated,
    or oversized (> MAX_PIXELS) inputs.
    """
    name = "image" if isinstance(src, bytes) else Path(src).name
    try:
        fp = io.BytesIO(src) if isinstance(src, bytes) else open(src, "rb")  # noqa: SIM115
    except OSError as e:
        raise ImageError(f"cannot open {name}: {e.strerror or e}") from None
    with fp, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(fp)
            if im.width * im.height > MAX_PIXELS:
                raise ImageError(f"{name} is too large ({im.width}x{im.height} pixels)")
            im.load()
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(f"{name} is too large to decode safely") from None
        except Exception as e:  # PIL raises many types for bad data (OSError, SyntaxError, ...)
            raise ImageError(f"{name} is not a readable image ({type(e).__name__}: {e})") from None
    if im.mode in ("RGBA", "LA", "P", "PA"):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, rgba)
    return im.convert("RGB")


def to_rgb_array(im: Image.Image) -> np.ndarray:
    """``(H, W, 3)`` uint8."""
    return np.asarray(im.convert("RGB"), dtype=np.uint8)
