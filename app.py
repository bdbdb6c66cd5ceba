"""SketchDown web app: draw a sketch, watch the canvas selector pick a resolution, get ranked photos
and an honest FLOP count against the full network, after every stroke. Hugging Face Spaces runs this file.

    python app.py                                   # weights/default (or chairv2, or imagenet-lite0), gallery/photos
    python app.py --gallery ../shared/data/chairv2/photo --weights weights/chairv2 --port 7860

The app itself is the ``webapp`` package; importing this module loads nothing (``app.demo`` is built on
first access, from the environment, for tools that look the Blocks up by name).
"""

from __future__ import annotations

import sys
from typing import Any

from webapp.config import AppConfig, parse_args
from webapp.demo import create_demo, launch
from webapp.model import configure_logging, load_model


def main(argv: list[str] | None = None) -> None:
    """Parse flags, load the model, serve until interrupted."""
    configure_logging()
    config = AppConfig.from_env(parse_args(argv))
    model = load_model(config)
    demo = create_demo(config, model)
    print(f"[sketchdown] model ready in {model.load_seconds:.1f} s; serving on http://{config.host}:{config.port}", file=sys.stderr)
    launch(demo, server_name=config.host, server_port=config.port)


def __getattr__(name: str) -> Any:
    if name == "demo":  # built lazily and once: `gradio app.py` and similar tools read `app.demo`
        configure_logging()
        globals()["demo"] = d = create_demo(AppConfig.from_env())
        return d
    raise AttributeError(name)


if __name__ == "__main__":
    main(sys.argv[1:])
