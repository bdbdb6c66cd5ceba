"""Training configs on the command line and as recorded: argparse over a config dataclass, smoke-mode
overrides, and :func:`recorded_config`, which reads a config back from a checkpoint or a weight set's
provenance (the one place that knows which recorded options were removed)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TypeVar

C = TypeVar("C")

# Options older runs recorded that no code reads any more. A recorded config holding them still loads;
# any other unknown key is an error (a typo, or a config of another script).
DEAD_KEYS = frozenset({
    "p_prefix",  # DistillConfig: a prefix-augmentation probability the training loop never used
    "policy",  # SelectorConfig: "concat" (lambda_F as one more head input) vs "tradeoff"; only "tradeoff" remains
    "lam_feature",  # SelectorConfig: the policy always reads lambda_F ** (1 / lam_power)
})


def recorded_config(cls: type[C], recorded: dict[str, Any], source: str = "") -> C:
    """``cls`` built from a config as a run recorded it (``json.loads(ck["config"])``, ``provenance.<branch>.config``):
    options removed since (:data:`DEAD_KEYS`) are dropped, options added since take their defaults."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(recorded) - names - DEAD_KEYS)
    if unknown:
        raise SystemExit(f"{source or cls.__name__}: recorded config has unknown options {unknown}")
    kept = {k: v for k, v in recorded.items() if k in names}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in kept and isinstance(kept[f.name], list) and str(f.type).startswith("tuple"):
            kept[f.name] = tuple(kept[f.name])  # JSON has no tuples
    return cls(**kept)


def parse_config(cls: type[C], argv: list[str] | None, doc: str | None = None) -> C:
    """argparse over a dataclass: one ``--flag`` per field (booleans get ``--no-flag`` too, lists repeat)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = f"--{f.name.replace('_', '-')}"
        t = str(f.type)
        if t == "bool":
            p.add_argument(name, action=argparse.BooleanOptionalAction, default=f.default)
        elif t.startswith("list"):
            p.add_argument(name, action="append", default=None)
        elif t.startswith("tuple"):
            conv = float if "float" in t else int
            p.add_argument(name, type=lambda v, conv=conv: tuple(conv(x) for x in v.split(",")), default=f.default)
        else:
            p.add_argument(name, type={"int": int, "float": float}.get(t, str), default=f.default)
    args = vars(p.parse_args(argv))
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if str(f.type).startswith("list") and args[f.name] is None:
            args[f.name] = f.default_factory()  # type: ignore[misc]
    return cls(**args)


def apply_smoke(cfg: C, **overrides: Any) -> C:
    """Smoke-mode settings, except where a flag was given explicitly (fields not at their default)."""
    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}  # type: ignore[arg-type]
    keep = {k: v for k, v in overrides.items() if getattr(cfg, k) == defaults[k]}
    return dataclasses.replace(cfg, **keep)  # type: ignore[type-var]
