"""Command line: ``python -m cbft_core {run,plan,chapter,book,refresh,notebooks,sweep,presets}``.

Errors that cbft_core raises on purpose (bad arguments, missing data, a
corrupt cache entry, a NaN loss) end in one line on stderr and exit code 2,
never a traceback.
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import CbftError
from ..study.presets import PRESET_NAMES

SWEEP_METHODS: tuple[str, ...] = ("ft", "llrt", "lpft", "cbft", "cbft-no-barrier", "cbft-no-invariance")

__all__ = ["main", "build_parser", "toc_files", "chapters", "execute_chapter", "plan_text"]

REPO = Path(__file__).resolve().parents[2]


def toc_files(book_root: Path = REPO) -> list[str]:
    """Every document named in ``_toc.yml`` (root first), in order, without extension."""
    import yaml

    toc_path = book_root / "_toc.yml"
    if not toc_path.exists():
        raise CbftError(f"no _toc.yml in {book_root}: run this from a clone of the book's repository")
    toc = yaml.safe_load(toc_path.read_text())
    names: list[str] = [toc["root"]]

    def walk(entries: Any) -> None:
        for entry in entries or []:
            if "file" in entry:
                names.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return names


def chapters(book_root: Path = REPO) -> list[Path]:
    """The notebook chapters listed in ``_toc.yml``, in order."""
    return [book_root / f"{n}.ipynb" for n in toc_files(book_root) if (book_root / f"{n}.ipynb").exists()]


def _value(text: str) -> Any:
    """A ``-p NAME VALUE`` value: a Python literal when it parses as one, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _check_params(args: argparse.Namespace) -> None:
    """Refuse a bad ``-p NAME VALUE`` before anything runs: for ``run`` every NAME is a preset
    setting; for ``chapter``/``book`` the NAMEs that are preset settings are checked."""
    from ..study import presets

    params = dict(getattr(args, "param", None) or [])
    if args.command == "run":
        presets.get(args.preset, **params)
    elif params and hasattr(args, "preset"):
        presets.check_overrides(args.preset, params)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ARROW = re.compile(r"^-+>\s*\d+\s(.*)$")


def _failing_line(traceback: Sequence[str]) -> str:
    """The cell's own line that raised: the first ``---->`` line of an IPython traceback ('' if none)."""
    for frame in traceback:
        for text in _ANSI.sub("", frame).splitlines():
            match = _ARROW.match(text)
            if match:
                return match[1].strip()
    return ""


def execute_chapter(path: Path, out: Path, parameters: dict[str, Any], progress: bool = True) -> Path:
    """Execute one chapter with papermill, injecting ``parameters``; returns the executed notebook's path."""
    import papermill

    from . import progress as bars

    if not path.exists():
        raise CbftError(f"chapter {path} does not exist; chapters: {[c.name for c in chapters()]}")
    out.mkdir(parents=True, exist_ok=True)
    target = out / path.name
    try:
        with bars.non_interactive():  # no progress bars in the executed notebook (CBFT_PROGRESS=0)
            papermill.execute_notebook(str(path), str(target), parameters=parameters, cwd=str(path.parent),
                                       kernel_name="python3", progress_bar=progress)
    except papermill.PapermillExecutionError as exc:
        line = _failing_line(exc.traceback)
        at = f" at `{line}`" if line else ""
        raise CbftError(f"{path.name} failed in cell {exc.cell_index}{at}: {exc.ename}: {exc.evalue} "
                        f"(executed notebook: {target})") from None
    bars.clean_file(target)  # and none of the bars that the kernels draw regardless
    return target


# --- the plan printed before a run -------------------------------------------------------------

def _count(n: float) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n:,.0f}".replace(",", " ")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def plan_text(the_plan: Any, rate: Any | None = None, fetch_hint: str | None = None) -> str:
    """The plan of :func:`cbft_core.study.plan.make` as text; ``rate``: a measured
    :class:`~cbft_core.study.plan.Throughput` (no time estimate without it)."""
    from ..study import plan

    cfg, seeds = the_plan.preset, sorted({r.seed for r in the_plan.rows})
    lines = [f"plan: preset {cfg.name}, cue {the_plan.cue}, seed(s) {' '.join(map(str, seeds))}, "
             f"model {cfg.model} (width {cfg.width:g}), {cfg.n_train} training / {cfg.n_test} test images"]
    rows = [r for r in the_plan.rows if r.seed == seeds[0]]
    status = {(r.seed, r.name): "train" if r.needed and r.kind == "model" else "run" if r.needed
              else "cached" if r.cached else "skip" for r in the_plan.rows}
    width = max(len(r.name) for r in rows)
    lines.append(f"  {'step':{width}s}  epochs  images/seed (train + forward)  " + "  ".join(f"seed {s}" for s in seeds))
    for r in rows:
        cells = "  ".join(f"{status[(s, r.name)]:>{len(f'seed {s}')}s}" for s in seeds)
        images = f"{_count(r.train_images)} + {_count(r.forward_images)}"
        lines.append(f"  {r.name:{width}s}  {r.epochs or '':>6}  {images:>29s}  {cells}")
    total, left = the_plan.work(needed_only=False), the_plan.work()
    cached = sum(r.cached for r in the_plan.rows)
    lines.append(f"work: {_count(total['train'])} training + {_count(total['forward'])} forward-only images in all; "
                 f"this run: {_count(left['train'])} + {_count(left['forward'])} "
                 f"({cached} of {len(the_plan.rows)} entries cached in {the_plan.cache_dir})")
    for need in the_plan.data:
        where = "built in" if not need.root else f"{'present' if need.present else 'MISSING'} under {need.root}"
        lines.append(f"data: {need.name} ({need.role}) {where}")
    if the_plan.missing_data:
        lines.append(f"  fetch it with: {fetch_hint or 'CBFT_DOWNLOAD=1 (downloads on first use)'}")
    if left["train"] + left["forward"] == 0:
        lines.append("time: nothing to compute; every result comes from the cache")
    elif rate is not None:
        seconds = plan.estimate_seconds(the_plan, rate)
        lines.append(f"time: about {_duration(seconds)} at {_count(rate.train_per_s)} training and "
                     f"{_count(rate.forward_per_s)} forward images/s, measured just now on {rate.device} "
                     f"(batches of {rate.train_batch} and {rate.forward_batch}, {rate.seconds:.1f} s; "
                     f"data making and checkpoints left out)")
    return "\n".join(lines)


def _fetch_command(preset: str, cue: str) -> str:
    return f"python -m cbft_core plan --preset {preset} --cue {cue} --fetch"


def _print_plan(preset: str, cue: str, seeds: Sequence[int] | None, overrides: dict[str, Any],
                measure: bool = True) -> Any:
    """Make, measure and print the plan of one study; returns it."""
    from ..study import plan

    the_plan = plan.make(preset, cue, seeds, **overrides)
    left = the_plan.work()
    rate = None
    if measure and left["train"] + left["forward"] > 0:
        rate = plan.measure_throughput(the_plan.preset, cue)
    print(plan_text(the_plan, rate, _fetch_command(preset, cue)), flush=True)
    return the_plan


def _cmd_plan(args: argparse.Namespace) -> None:
    from ..kernels import data

    overrides = dict(args.param or [])
    if args.fetch:
        the_plan = _print_plan(args.preset, args.cue, args.seeds, overrides, measure=False)
        for name in the_plan.missing_data:
            print(f"fetching {name} into {data.data_root()} ...", flush=True)
            data.fetch(name)
    _print_plan(args.preset, args.cue, args.seeds, overrides, measure=not args.no_measure)


def _cmd_run(args: argparse.Namespace) -> None:
    from ..study import pipeline
    from .figures import study_figures

    overrides = dict(args.param or [])
    _print_plan(args.preset, args.cue, args.seeds, overrides)
    result = pipeline.run(args.preset, seeds=args.seeds, out=args.out, cue=args.cue, **overrides)
    study_figures(result, args.out)
    print(f"results written to {Path(args.out) / 'results.json'} ({len(result['seeds'])} seed(s))")


def _cmd_chapter(args: argparse.Namespace) -> None:
    params = {"preset": args.preset, **dict(args.param or [])}
    target = execute_chapter(Path(args.notebook).resolve(), Path(args.out), params, progress=not args.quiet)
    print(f"executed {target}")


def _execute_timed(paths: Sequence[Path], out: Callable[[Path], Path], parameters: dict[str, Any],
                   progress: bool, verb: str) -> dict[str, float]:
    """Execute chapters in order, printing each one's wall time and the total (what the book costs);
    returns the seconds per chapter (by file stem)."""
    total = 0.0
    seconds: dict[str, float] = {}
    for path in paths:
        start = time.perf_counter()
        target = execute_chapter(path, out(path), parameters, progress=progress)
        seconds[path.stem] = time.perf_counter() - start
        total += seconds[path.stem]
        print(f"{verb} {target} in {seconds[path.stem]:.0f} s", flush=True)
    print(f"{len(paths)} chapter(s) in {total:.0f} s ({total / 60:.1f} min)")
    return seconds


def _cmd_book(args: argparse.Namespace) -> None:
    params = {"preset": args.preset, **dict(args.param or [])}
    _print_plan(args.preset, "box", None, {})
    print("(the study's box models and paths at the preset; the chapters add the Dominoes study "
          "and extra models of their own, not counted here)", flush=True)
    _execute_timed(chapters(), lambda _: Path(args.out), params, not args.quiet, "executed")


def _cmd_refresh(args: argparse.Namespace) -> None:
    every = chapters()
    unknown = sorted(set(args.only or ()) - {p.stem for p in every})
    if unknown:
        raise CbftError(f"--only: unknown chapter(s) {unknown}; chapters: {[p.stem for p in every]}")
    selected = [p for p in every if not args.only or p.stem in args.only]
    from ..study.cache import cache_dir
    from . import howto

    folder = cache_dir()
    cold = not args.only and not (folder.is_dir() and any(f.is_file() for f in folder.rglob("*")))
    seconds = _execute_timed(selected, lambda p: p.parent, {}, not args.quiet, "refreshed")
    if cold:  # every model trained in this run: what a reader's first full run costs on this machine
        print(f"cold refresh (empty cache {folder}): timings recorded in {howto.record_timings(REPO, seconds)}; "
              "`python -m cbft_core.presentation.howto` puts them into How to run")


def _cmd_notebooks(args: argparse.Namespace) -> None:
    import tempfile

    from . import reader

    if args.check:
        with tempfile.TemporaryDirectory(prefix="cbft-reader-") as scratch:
            problems = reader.stale(REPO, Path(scratch))
        if problems:
            raise CbftError("; ".join(problems) + ": run `python -m cbft_core notebooks`")
        print(f"the reader notebooks in {reader.READER_DIR}/ match the chapters")
        return
    out = Path(args.out) if args.out else None
    for path in reader.write_all(REPO, out):
        print(f"wrote {path}")


def _cmd_presets(args: argparse.Namespace) -> None:
    from ..study import presets

    print(json.dumps({name: presets.get(name).as_dict() for name in PRESET_NAMES}, indent=1, default=list))


def _cmd_sweep(args: argparse.Namespace) -> None:
    from ..study import sweep
    from .figures import sweep_figures

    doc = sweep.run(args.preset, seeds=args.seeds, proportions=args.proportions, cues=args.cues,
                    engine=args.engine, workers=args.workers, address=args.address, out=args.out,
                    methods=args.methods, report=lambda line: print(line, flush=True), **dict(args.param or []))
    written = sweep_figures(doc, args.out)
    stored = sum(len(by_s) for by_p in doc["units"].values() for by_s in by_p.values())
    print(f"sweep written to {Path(args.out) / 'sweep.json'} ({stored} unit(s)) and {len(written)} figure(s)")
    if doc["failed"]:
        names = "; ".join(f"{name} ({why})" for name, why in doc["failed"].items())
        raise CbftError(f"{len(doc['failed'])} unit(s) failed after {sweep.MAX_ATTEMPTS} attempts: {names}; "
                        "rerun the same command to retry them (finished units come from the cache)")


def _add_sweep_parser(sub: Any, preset_option: Callable[[argparse.ArgumentParser], None],
                      param_option: Callable[[argparse.ArgumentParser, str], None]) -> None:
    sweep = sub.add_parser(
        "sweep", help="run the study over seeds x cue proportions x cues, locally or on Ray",
        description="One unit per (cue, proportion, seed): children, paths and fine-tuning at that cue "
                    "proportion. Writes sweep.json and figures; finished units come from the cache.")
    preset_option(sweep)
    sweep.add_argument("--seeds", type=int, nargs="+", required=True, help="seeds of the replicates")
    sweep.add_argument("--proportions", type=float, nargs="+", required=True, metavar="P",
                       help="cue proportions in [0, 1] (0: the cue child is cue-free)")
    sweep.add_argument("--cues", nargs="+", required=True, metavar="CUE", help="cue types: box, dominoes")
    sweep.add_argument("--engine", default="local", choices=("local", "ray"),
                       help="local: one unit at a time in this process; ray: units as Ray tasks")
    sweep.add_argument("--workers", type=int, default=None,
                       help="ray: CPUs of the local cluster, or the most units in flight on --address")
    sweep.add_argument("--address", default=None,
                       help="ray: join the cluster at HOST:PORT (or 'auto'); without it a local one is started")
    # the method names are written out: importing the study's steps (and torch) for them would cost every
    # command line a couple of seconds; a test keeps this list equal to cbft_core.study.steps.FT_METHODS
    sweep.add_argument("--methods", nargs="*", default=list(SWEEP_METHODS), metavar="METHOD",
                       help=f"fine-tuning methods of every unit (default: all of {list(SWEEP_METHODS)})")
    sweep.add_argument("--out", required=True, help="output folder for sweep.json and figures")
    param_option(sweep, "preset setting, e.g. -p n_train 5000")
    sweep.set_defaults(func=_cmd_sweep)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m cbft_core``."""
    parser = argparse.ArgumentParser(
        prog="python -m cbft_core",
        description="Run the Mechanistic Mode Connectivity study or execute the book's chapters.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def preset_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--preset", default="cpu", choices=PRESET_NAMES,
                       help="scale of the run: tiny (smoke test), cpu (default), paper (GPU, CIFAR-10)")

    def param_option(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                       type=str, help=f"override one {what} (repeatable); VALUE is a Python literal or a string")

    run = sub.add_parser("run", help="run the whole study and write results.json and figures",
                         description="Data, shared parent, cue and no-cue children, paths and every "
                                     "fine-tuning method, resuming from the checkpoint cache.")
    preset_option(run)
    run.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: the preset's)")
    run.add_argument("--cue", default="box", choices=("box", "dominoes"), help="cue type (default: box)")
    run.add_argument("--out", required=True, help="output folder for results.json and figures")
    param_option(run, "preset setting, e.g. -p n_train 5000")
    run.set_defaults(func=_cmd_run)

    plan = sub.add_parser("plan", help="print what `run` will train and evaluate, what is cached, and how long",
                          description="The work of `run` at a preset (models, epochs, images through the "
                                      "network, paths, fine-tuning runs), which results are already "
                                      "cached, the data it needs, and a time estimate from a throughput "
                                      "measured for a few seconds on this machine's device.")
    preset_option(plan)
    plan.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: the preset's)")
    plan.add_argument("--cue", default="box", choices=("box", "dominoes"), help="cue type (default: box)")
    plan.add_argument("--fetch", action="store_true", help="download the data sets that are missing (network)")
    plan.add_argument("--no-measure", action="store_true", help="skip the throughput measurement (no time estimate)")
    param_option(plan, "preset setting, e.g. -p n_train 5000")
    plan.set_defaults(func=_cmd_plan)

    chapter = sub.add_parser("chapter", help="execute one chapter with papermill at a preset",
                             description="Execute one notebook, injecting preset and parameters.")
    chapter.add_argument("notebook", help="path of the chapter, e.g. book/05_cbft.ipynb")
    preset_option(chapter)
    chapter.add_argument("--out", required=True, help="folder for the executed notebook")
    chapter.add_argument("--quiet", action="store_true", help="no progress bar")
    param_option(chapter, "parameter of the chapter's parameters cell")
    chapter.set_defaults(func=_cmd_chapter)

    book = sub.add_parser("book", help="execute every chapter of _toc.yml at a preset",
                          description="Execute every chapter with papermill at the chosen preset "
                                      "(how a GPU user replicates the paper).")
    preset_option(book)
    book.add_argument("--out", required=True, help="folder for the executed notebooks")
    book.add_argument("--quiet", action="store_true", help="no progress bars")
    param_option(book, "parameter injected into every chapter")
    book.set_defaults(func=_cmd_book)

    refresh = sub.add_parser("refresh", help="re-execute chapters in place at their default parameters",
                             description="Refresh the committed outputs of the chapters. Run with an empty "
                                         "cache (a cold run), it also records the chapters' timings in "
                                         "benchmarks/book_timings.json, which How to run quotes.")
    refresh.add_argument("--only", nargs="+", default=None, metavar="STEM",
                         help="only these chapters (file stems, e.g. 03_mechanisms)")
    refresh.add_argument("--quiet", action="store_true", help="no progress bars")
    refresh.set_defaults(func=_cmd_refresh)

    notebooks = sub.add_parser(
        "notebooks", help="write the reader notebooks (Colab, Binder) from the chapters' committed outputs",
        description="For every chapter of _toc.yml write notebooks/<chapter>.ipynb: its cells and outputs "
                    "with the MyST of the prose as plain Markdown (glued numbers written out, links to the "
                    "published pages, author-year citations, included code).")
    notebooks.add_argument("--out", default=None, help="folder to write into (default: notebooks/ of the book)")
    notebooks.add_argument("--check", action="store_true",
                           help="write nothing; fail (exit 2) when the committed reader notebooks are stale")
    notebooks.set_defaults(func=_cmd_notebooks)

    _add_sweep_parser(sub, preset_option, param_option)

    show = sub.add_parser("presets", help="print every preset's settings as JSON",
                          description="Print the settings of every preset.")
    show.set_defaults(func=_cmd_presets)
    return parser


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      file: Any = None, line: str | None = None) -> None:
    """Warnings (e.g. a corrupt cache entry being recomputed) as one line on stderr."""
    print(f"warning: {message}", file=sys.stderr if file is None else file, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "param", None):
        args.param = [(name, _value(value)) for name, value in args.param]
    try:
        _check_params(args)
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            args.func(args)
    except CbftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
