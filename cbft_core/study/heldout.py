"""Held-out seeds: the study re-run, unchanged, on seeds its settings were not chosen on.

The ``cpu`` preset's settings were chosen by trials on seeds 0–2. ``python -m
cbft_core.study.heldout`` runs the whole study (:func:`cbft_core.study.pipeline.results`)
at the same preset on other seeds (3 and 4 by default), for both cues, and keeps the
results documents (checksummed results.json bodies, :mod:`cbft_core.study.documents`) in
``schemas/heldout.json``, committed with the library like the
departures of :mod:`cbft_core.study.fidelity`: chapter 6 shows each claim's verdict on
those seeds without a reader paying for the extra training (about 4 min for the box
and 8 min for Dominoes on two cores).
"""
from __future__ import annotations

import argparse
import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError
from ..kernels.data import CUES
from . import cache, documents, pipeline, presets
from .fidelity import REFERENCE_PRESET

__all__ = ["HELDOUT_FILE", "FORMAT", "DEFAULT_SEEDS", "measure", "load", "main"]

HELDOUT_FILE = "heldout.json"  # in cbft_core/study/schemas/
FORMAT = "cbft_core.heldout/1"
DEFAULT_SEEDS: tuple[int, ...] = (3, 4)


def measure(seeds: Sequence[int] = DEFAULT_SEEDS, preset: str = REFERENCE_PRESET, cues: Sequence[str] = CUES,
            progress: bool = True) -> dict[str, Any]:
    """The held-out document: ``{"format", "preset", "seeds", "results": {cue: a results.json document}}``."""
    cfg = presets.get(preset, seeds=[int(s) for s in seeds])
    return {"format": FORMAT, "preset": cfg.name, "seeds": list(cfg.seeds),
            "results": {cue: documents.complete(documents.RESULTS, pipeline.results(cfg, cue=cue, progress=progress))
                        for cue in cues}}


def _path() -> Path:
    return Path(str(resources.files(__package__).joinpath("schemas", HELDOUT_FILE)))


@functools.lru_cache(maxsize=1)
def load() -> dict[str, Any] | None:
    """The committed held-out document, checked; ``None`` when it has not been measured."""
    path = _path()
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ConfigError(f"{HELDOUT_FILE}: not valid JSON ({exc})") from None
    if (not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("results"), dict)
            or not isinstance(doc.get("seeds"), list)):
        raise ConfigError(f"{HELDOUT_FILE}: expected {{'format': {FORMAT!r}, 'preset', 'seeds', 'results'}}")
    for cue, results in doc["results"].items():
        documents.validate(documents.RESULTS, results, f"{HELDOUT_FILE}: results for {cue!r}")
        if cue not in CUES or results["cue"] != cue or results["seeds"] != doc["seeds"]:
            raise ConfigError(f"{HELDOUT_FILE}: results for {cue!r} do not belong to {cue!r} on seeds {doc['seeds']}")
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    """Run the study on held-out seeds and write :data:`HELDOUT_FILE` (``python -m cbft_core.study.heldout``)."""
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    args = ap.parse_args(argv)
    doc = measure(args.seeds)
    cache.write_text(_path(), json.dumps(doc, indent=1, sort_keys=True) + "\n")  # atomic
    load.cache_clear()
    print(f"held-out seeds {doc['seeds']} at preset {doc['preset']}: written to {_path()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
