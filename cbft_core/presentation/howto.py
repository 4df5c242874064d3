"""The generated parts of "How to run" (``book/how_to_run.md``) and of the README.

Each part sits between ``<!-- generated: NAME ... -->`` and
``<!-- generated: end NAME -->`` and is rendered here from the code, so the
pages cannot drift from it:

- ``presets``: the table of presets — data, model (with its parameter count),
  purpose and time — from :mod:`cbft_core.study.presets`; the ``cpu`` row's
  time comes from the record a cold refresh writes (:data:`TIMINGS`,
  :func:`record_timings`), or says plainly that none was recorded yet;
- ``launch``: what Binder and Colab open and install (``binder/``, the reader
  notebooks, the install cell's ref);
- ``one-chapter``: running one chapter at another scale, with an override
  that differs from the default.

``python -m cbft_core.presentation.howto`` rewrites them; a test checks that
the committed pages equal the rendering.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Mapping

from ..errors import CbftError

__all__ = ["TIMINGS", "PAGES", "blocks", "render", "record_timings", "main"]

TIMINGS = "benchmarks/book_timings.json"   # written by a cold `python -m cbft_core refresh`
PAGES = ("book/how_to_run.md", "README.md")
_START = "<!-- generated: {name} (python -m cbft_core.presentation.howto) -->"
_END = "<!-- generated: end {name} -->"
_DATA = {"shapes": "procedural *shapes* images", "cifar10": "CIFAR-10 images", "cifar100": "CIFAR-100 images",
         "fashionmnist": "Fashion-MNIST images", "mnist": "MNIST images", "digits": "digit images"}
_MODELS = {"cnn": "4-layer CNN", "vgg13": "VGG-13 with BatchNorm", "resnet18": "ResNet-18"}
_PURPOSE = {"tiny": "smoke tests of the code", "cpu": "reading and experimenting on a laptop",
            "paper": "the paper's settings {cite:p}`lubana2023mechanistic`"}
_TIME = {"tiny": "seconds per chapter", "paper": "hours on one GPU"}


def _count(n: float) -> str:
    return f"{n:,.0f}".replace(",", " ")


def _parameters(name: str, num_classes: int, width: float) -> str:
    from ..kernels import models

    n = sum(p.numel() for p in models.build(name, num_classes, width=width).parameters())
    return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.0f} k"


def _timings(repo: Path) -> Mapping[str, Any] | None:
    path = repo / TIMINGS
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        float(record["total_s"])
    except (ValueError, KeyError, TypeError):
        raise CbftError(f"{TIMINGS} is not a timing record: delete it or write it with a cold refresh") from None
    return record


_WARM_TIME = "seconds per chapter with the models cached"


def _cpu_time(repo: Path) -> str:
    record = _timings(repo)
    if record is None:
        return ("*(not recorded yet: `CBFT_CACHE_DIR=$(mktemp -d) python -m cbft_core refresh` records it)*; "
                + _WARM_TIME)
    minutes = float(record["total_s"]) / 60
    return (f"{minutes:.0f} min for every chapter with an empty cache ({record.get('machine', 'reference machine')}, "
            f"{record.get('date', '')}); " + _WARM_TIME)


def _presets(repo: Path) -> str:
    from ..study import presets

    rows = ["| preset | data | model | what it is for | time |", "|---|---|---|---|---|"]
    for name in presets.PRESET_NAMES:
        cfg = presets.get(name)
        data = f"{_count(cfg.n_train)} {_DATA.get(cfg.dataset, cfg.dataset + ' images')}"
        if name != "tiny" and cfg.simple and _DATA.get(cfg.simple) and cfg.dataset != "shapes":
            data += f" (+ {_DATA[cfg.simple].removesuffix(' images')} for Dominoes)"
        width = "" if cfg.width == 1 else f", width {cfg.width:g}"
        model = f"{_MODELS.get(cfg.model, cfg.model)}{width} ({_parameters(cfg.model, cfg.num_classes, cfg.width)} parameters)"
        label = f"`{name}` (default)" if name == "cpu" else f"`{name}`"
        time = _cpu_time(repo) if name == "cpu" else _TIME.get(name, "")
        rows.append(f"| {label} | {data} | {model} | {_PURPOSE.get(name, '')} | {time} |")
    return "\n".join(rows)


def _launch(repo: Path) -> str:
    from .launch import install_ref, install_spec, read_config
    from .reader import READER_DIR

    config = read_config(repo)
    binder = "binder/requirements.txt" if (repo / "binder" / "requirements.txt").is_file() else "requirements.txt"
    post = " and then runs `binder/postBuild`, which installs `cbft_core` from the checkout" \
        if (repo / "binder" / "postBuild").is_file() else ""
    return "\n".join([
        "Use the rocket icon at the top of a chapter. Both buttons open the chapter's *reader notebook*",
        f"(`{READER_DIR}/<chapter>.ipynb` on the `{install_ref(config)}` branch): the chapter with its stored "
        "outputs, its numbers written into the text, links to these pages and plain citations.",
        "",
        f"- **Binder** builds its environment from the repository's `binder/` folder: it installs `{binder}`"
        f"{post}. Open the notebook and run all cells.",
        "- **Colab** opens the notebook directly. Its first code cell installs the book's library when it is "
        f"not importable — `{install_spec(config)}`, the same branch as the notebook — so the notebook is "
        "self-sufficient. Colab offers a GPU: switch the runtime type and set `preset = \"paper\"` to rerun "
        "at paper scale.",
        "- **Live code** (Thebe) turns the code cells of the page you are reading into editable cells backed "
        "by a Binder kernel.",
    ])


def _one_chapter(repo: Path) -> str:
    from ..study import presets

    cpu, paper = presets.get("cpu"), presets.get("paper")
    value = paper.cbft_lambda if paper.cbft_lambda != cpu.cbft_lambda else cpu.cbft_lambda * 2
    why = "the paper's" if paper.cbft_lambda != cpu.cbft_lambda else "twice the default"
    return "\n".join([
        "```bash",
        ".venv/bin/python -m cbft_core chapter book/05_cbft.ipynb --preset tiny --out runs/tiny",
        f"# CBFT with {why} λ ({value:g}; the cpu preset's is {cpu.cbft_lambda:g})",
        f".venv/bin/python -m cbft_core chapter book/05_cbft.ipynb -p cbft_lambda {value:g} --out runs/lambda",
        "```",
    ])


def blocks(repo: Path) -> dict[str, str]:
    """Every generated part, by name, rendered from the code and the repository at ``repo``."""
    return {"presets": _presets(repo), "launch": _launch(repo), "one-chapter": _one_chapter(repo)}


def render(page: str, parts: Mapping[str, str]) -> str:
    """``page`` with each generated part it holds replaced by ``parts[name]``."""
    for name, text in parts.items():
        start, end = _START.format(name=name), _END.format(name=name)
        if page.count(start) != page.count(end) or page.count(start) > 1:
            raise CbftError(f"generated part {name!r}: expected one start and one end marker")
        if start in page:
            head, rest = page.split(start)
            _, tail = rest.split(end)
            page = f"{head}{start}\n{text}\n{end}{tail}"
    unknown = set(re.findall(r"<!-- generated: (?!end )(\S+)", page)) - set(parts)
    if unknown:
        raise CbftError(f"unknown generated part(s) {sorted(unknown)}")
    return page


def record_timings(repo: Path, seconds: Mapping[str, float], preset: str = "cpu") -> Path:
    """Write :data:`TIMINGS` from a cold refresh: seconds per chapter, their total, the machine and the date."""
    import platform

    import torch

    record = {"command": "python -m cbft_core refresh (empty cache)", "preset": preset,
              "chapters": {k: round(v, 1) for k, v in seconds.items()}, "total_s": round(sum(seconds.values()), 1),
              "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, torch {torch.__version__}",
              "date": dt.date.today().isoformat()}
    path = repo / TIMINGS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    """Rewrite the generated parts of :data:`PAGES` in the repository (default: the current folder)."""
    repo = Path(argv[0] if argv else ".").resolve()
    parts = blocks(repo)
    for name in PAGES:
        path = repo / name
        new = render(path.read_text(), parts)
        if new != path.read_text():
            path.write_text(new)
            print(f"updated {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
