"""Command line: ``python -m cbft_core {run,chapter,book,refresh,presets}``.

Errors that cbft_core raises on purpose (bad arguments, missing data, a
corrupt cache entry, a NaN loss) end in one line on stderr and exit code 2,
never a traceback.
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import CbftError
from ..study.presets import PRESET_NAMES

__all__ = ["main", "build_parser", "toc_files", "chapters", "execute_chapter"]

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
        raise CbftError(f"{path.name} failed in cell {exc.cell_index}: {exc.ename}: {exc.evalue} "
                        f"(executed notebook: {target})") from None
    bars.clean_file(target)  # and none of the bars that the kernels draw regardless
    return target


def _cmd_run(args: argparse.Namespace) -> None:
    from ..study import pipeline
    from .figures import study_figures

    overrides = dict(args.param or [])
    result = pipeline.run(args.preset, seeds=args.seeds, out=args.out, cue=args.cue, **overrides)
    study_figures(result, args.out)
    print(f"results written to {Path(args.out) / 'results.json'} ({len(result['seeds'])} seed(s))")


def _cmd_chapter(args: argparse.Namespace) -> None:
    params = {"preset": args.preset, **dict(args.param or [])}
    target = execute_chapter(Path(args.notebook).resolve(), Path(args.out), params, progress=not args.quiet)
    print(f"executed {target}")


def _execute_timed(paths: Sequence[Path], out: Callable[[Path], Path], parameters: dict[str, Any],
                   progress: bool, verb: str) -> None:
    """Execute chapters in order, printing each one's wall time and the total (what the book costs)."""
    total = 0.0
    for path in paths:
        start = time.perf_counter()
        target = execute_chapter(path, out(path), parameters, progress=progress)
        seconds = time.perf_counter() - start
        total += seconds
        print(f"{verb} {target} in {seconds:.0f} s", flush=True)
    print(f"{len(paths)} chapter(s) in {total:.0f} s ({total / 60:.1f} min)")


def _cmd_book(args: argparse.Namespace) -> None:
    params = {"preset": args.preset, **dict(args.param or [])}
    _execute_timed(chapters(), lambda _: Path(args.out), params, not args.quiet, "executed")


def _cmd_refresh(args: argparse.Namespace) -> None:
    every = chapters()
    unknown = sorted(set(args.only or ()) - {p.stem for p in every})
    if unknown:
        raise CbftError(f"--only: unknown chapter(s) {unknown}; chapters: {[p.stem for p in every]}")
    selected = [p for p in every if not args.only or p.stem in args.only]
    _execute_timed(selected, lambda p: p.parent, {}, not args.quiet, "refreshed")


def _cmd_presets(args: argparse.Namespace) -> None:
    from ..study import presets

    print(json.dumps({name: presets.get(name).as_dict() for name in PRESET_NAMES}, indent=1, default=list))


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
                             description="Refresh the committed outputs of the chapters.")
    refresh.add_argument("--only", nargs="+", default=None, metavar="STEM",
                         help="only these chapters (file stems, e.g. 03_mechanisms)")
    refresh.add_argument("--quiet", action="store_true", help="no progress bars")
    refresh.set_defaults(func=_cmd_refresh)

    show = sub.add_parser("presets", help="print every preset's settings as JSON",
                          description="Print the settings of every preset.")
    show.set_defaults(func=_cmd_presets)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "param", None):
        args.param = [(name, _value(value)) for name, value in args.param]
    try:
        args.func(args)
    except CbftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
