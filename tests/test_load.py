"""The load-test script end to end in its short form: app.py started on loopback with tiny weights and
a 6-photo gallery, 3 simulated users drawing for 4 s. The long runs (20 users x 60 s; a 10-minute
soak) are by hand: ``python scripts/load_test.py --help``."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from conftest import APP_PHOTOS as PHOTOS  # noqa: E402


def test_short_load_test(smoke_weights, tmp_path):
    pytest.importorskip("gradio_client")
    import load_test

    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for f in PHOTOS:
        shutil.copy(REPO / "gallery" / "photos" / f, gallery / f)
    r = load_test.main(["--users", "3", "--seconds", "4", "--rss-every", "1", "--weights", str(smoke_weights),
                        "--gallery", str(gallery), "--cache", str(tmp_path / "cache")])
    assert r["errors"] == 0, r["error_examples"]
    assert r["ok"] >= 3 and r["p50_ms"] > 0 and r["p95_ms"] >= r["p50_ms"]
    assert r["server_rss_mb_start"] and r["server_rss_mb_end"]
