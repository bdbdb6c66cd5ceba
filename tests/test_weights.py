"""sketchdown/weights.py: the fp16 safetensors + manifest format, its checks, and the offline
Hugging Face Hub path (a fake HF cache in tmp; no network)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import huggingface_hub
import pytest
import torch
from huggingface_hub import constants as hf_constants
from safetensors.torch import load_file

from sketchdown.bundles.weights import (
    FORMAT,
    MANIFEST,
    WeightsError,
    load_tensors,
    read_manifest,
    resolve_weights,
    save_tensors,
    write_manifest,
)


def _state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "conv.weight": torch.randn(8, 3, 3, 3, generator=g),
        "bn.running_mean": torch.randn(8, generator=g) * 100,
        "bn.num_batches_tracked": torch.tensor(17, dtype=torch.int64),
    }


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "w"
    m: dict = {"name": "tiny", "components": {"a": {"file": "a.safetensors"}}, "files": {}}
    save_tensors(d, "a.safetensors", _state(), m["files"])
    save_tensors(d, "b.safetensors", {"x": torch.ones(4)}, m["files"])
    write_manifest(d, m)
    return d


def test_save_tensors_writes_fp16_and_records_sha256(tmp_path: Path) -> None:
    files: dict[str, str] = {}
    digest = save_tensors(tmp_path / "w", "a.safetensors", _state(), files)
    path = tmp_path / "w" / "a.safetensors"
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest() == files["a.safetensors"]
    raw = load_file(str(path))
    assert raw["conv.weight"].dtype == torch.float16 and raw["bn.running_mean"].dtype == torch.float16
    assert raw["bn.num_batches_tracked"].dtype == torch.int64  # integer buffers kept as they are
    assert int(raw["bn.num_batches_tracked"]) == 17


def test_write_and_read_manifest(folder: Path) -> None:
    m = read_manifest(folder)
    assert m["format"] == FORMAT and m["name"] == "tiny" and set(m["files"]) == {"a.safetensors", "b.safetensors"}
    assert not list(folder.glob("*.tmp"))  # written atomically
    assert resolve_weights(folder) == folder


def test_load_tensors_round_trip(folder: Path) -> None:
    t = load_tensors(folder, "a.safetensors")
    ref = _state()
    assert set(t) == set(ref) and all(v.dtype == torch.float32 for v in t.values())
    for k in ("conv.weight", "bn.running_mean"):
        torch.testing.assert_close(t[k], ref[k].half().float(), rtol=0, atol=0)  # exactly the fp16 values
        torch.testing.assert_close(t[k], ref[k], rtol=1e-3, atol=1e-3)
    assert float(t["bn.num_batches_tracked"]) == 17.0
    # a module's int64 buffer takes the float value back exactly
    bn = torch.nn.BatchNorm2d(8)
    bn.load_state_dict({k[3:]: v for k, v in t.items() if k.startswith("bn.")}, strict=False)
    assert bn.num_batches_tracked.dtype == torch.int64 and int(bn.num_batches_tracked) == 17


def test_tampered_file_is_refused(folder: Path) -> None:
    p = folder / "a.safetensors"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the tensor data
    p.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256") as e:
        load_tensors(folder, "a.safetensors")
    assert "corrupt or was changed" in str(e.value) and "\n" not in str(e.value)
    load_tensors(folder, "b.safetensors")  # the other file is still fine


def test_missing_and_unlisted_files(folder: Path) -> None:
    (folder / "b.safetensors").unlink()
    with pytest.raises(WeightsError, match="missing weights file"):
        load_tensors(folder, "b.safetensors")
    shutil.copy(folder / "a.safetensors", folder / "c.safetensors")
    with pytest.raises(WeightsError, match="not listed"):
        load_tensors(folder, "c.safetensors")


def test_listed_file_that_is_not_safetensors(folder: Path) -> None:
    m = read_manifest(folder)
    (folder / "junk.safetensors").write_bytes(b"\x00\x01 not a safetensors file")
    m["files"]["junk.safetensors"] = hashlib.sha256((folder / "junk.safetensors").read_bytes()).hexdigest()
    with pytest.raises(WeightsError, match="cannot read"):
        load_tensors(folder, "junk.safetensors", m["files"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "cannot read"),
        (b"", "cannot read"),
        (b"\xff\xfe\x00garbage\x80\x81", "cannot read"),  # not even UTF-8
        (b"[1, 2, 3]", "manifest"),  # JSON, but not an object
        (b'"sketchdown/1"', "manifest"),
        (json.dumps({"format": "other/2"}).encode(), "unknown format"),
        (json.dumps({"files": {}}).encode(), "unknown format"),
    ],
)
def test_read_manifest_garbage(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / MANIFEST).write_bytes(content)
    with pytest.raises(WeightsError, match=message) as e:
        read_manifest(tmp_path)
    assert "\n" not in str(e.value)


def test_no_manifest(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="cannot read"):
        read_manifest(tmp_path)
    with pytest.raises(WeightsError, match="is it a SketchDown weights folder"):
        resolve_weights(tmp_path)


# ---- Hugging Face Hub, offline -----------------------------------------------------------------
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture()
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An offline HF cache in tmp holding ``owner/tiny-weights`` at COMMIT (refs/main -> COMMIT).

    huggingface_hub reads HF_HUB_CACHE and HF_HUB_OFFLINE into ``huggingface_hub.constants`` at
    import time, so the constants are patched as well as the environment.
    """
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    repo = cache / "models--owner--tiny-weights"
    snap = repo / "snapshots" / COMMIT
    m: dict = {"name": "tiny-hf", "components": {}, "files": {}}
    save_tensors(snap, "a.safetensors", _state(), m["files"])
    write_manifest(snap, m)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)  # no newline: the hub reads it verbatim
    return cache


def test_hf_snapshot_resolves_offline(hf_cache: Path) -> None:
    snap = hf_cache / "models--owner--tiny-weights" / "snapshots" / COMMIT
    for ref in ("hf://owner/tiny-weights", "hf://owner/tiny-weights@main", f"hf://owner/tiny-weights@{COMMIT}"):
        got = resolve_weights(ref)
        assert got.resolve() == snap.resolve()
    folder = resolve_weights("hf://owner/tiny-weights")
    assert read_manifest(folder)["name"] == "tiny-hf"
    t = load_tensors(folder, "a.safetensors")
    torch.testing.assert_close(t["conv.weight"], _state()["conv.weight"].half().float())


def test_hf_uncached_repo_is_a_weights_error(hf_cache: Path) -> None:
    with pytest.raises(WeightsError, match="cannot get hf://owner/not-cached") as e:
        resolve_weights("hf://owner/not-cached")
    assert "\n" not in str(e.value)
    with pytest.raises(WeightsError, match="cannot get"):
        resolve_weights("hf://owner/tiny-weights@v9-no-such-branch")


def test_hf_errors_become_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A network failure's multi-line hub message is folded into one line."""

    def fail(**kw):
        raise OSError("Got: ConnectError: no route\nAn error happened while trying to locate the files")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fail)
    with pytest.raises(WeightsError, match="cannot get hf://owner/x from the Hugging Face Hub: OSError: Got") as e:
        resolve_weights("hf://owner/x")
    assert "\n" not in str(e.value) and "An error happened" in str(e.value)
