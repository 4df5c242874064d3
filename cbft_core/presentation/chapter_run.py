"""The chapters as one test run under nbval: each executed once, its glued values logged, a failure in one line.

``scripts/run-tests`` first prepares copies of the chapters of ``_toc.yml``
(:func:`prepare`: ``python -m cbft_core.presentation.chapter_run DIR [--preset P]``),
injecting parameters the way papermill does (a cell tagged
``injected-parameters`` after the ``parameters`` cell), then runs

    pytest -p cbft_core.presentation.chapter_run --nbval-lax --nbval-current-env DIR/*.ipynb

nbval executes every code cell of a copy in one kernel and writes no executed
notebook. This module is also that run's pytest plugin:

- before a chapter's kernel starts it sets ``CBFT_GLUE_LOG`` to
  ``DIR/<chapter>.glue.jsonl`` (:func:`glue_log_path`) and ``CBFT_PROGRESS=0``,
  which the kernel inherits: every number the chapter glues is appended there
  (:func:`cbft_core.presentation.record.logged_values` reads it back) and no
  library loop draws a progress bar;
- a cell that raises stops the whole run, and its report is one line naming
  the chapter, the cell (its index among the chapter's cells, as in the
  committed notebook), the line that raised and the error (:func:`failure_line`).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any, Sequence

try:
    import pytest

    _hookimpl = pytest.hookimpl
except ImportError:  # preparing the copies needs no pytest
    def _hookimpl(**_options: Any) -> Any:
        return lambda function: function

__all__ = ["INJECTED_TAG", "GLUE_SUFFIX", "inject_parameters", "prepare", "glue_log_path", "failure_line", "main"]

INJECTED_TAG = "injected-parameters"
GLUE_SUFFIX = ".glue.jsonl"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def inject_parameters(nb: Any, parameters: dict[str, Any]) -> Any:
    """Insert a cell assigning ``parameters`` right after the cell tagged ``parameters`` (in place; returns ``nb``).

    The cell is tagged ``injected-parameters``, as papermill tags its own; nothing is inserted
    when ``parameters`` is empty.
    """
    import nbformat

    from ..errors import CbftError

    if not parameters:
        return nb
    where = next((i for i, c in enumerate(nb.cells)
                  if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])), None)
    if where is None:
        raise CbftError("the notebook has no cell tagged 'parameters' to inject parameters after")
    source = "# Parameters injected for this run\n" + "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED_TAG]})
    nb.cells.insert(where + 1, cell)
    return nb


def prepare(chapters: Sequence[Path], out: Path, parameters: dict[str, Any] | None = None) -> list[Path]:
    """Write a copy of each chapter into ``out`` with ``parameters`` injected; returns the copies' paths."""
    import nbformat

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in chapters:
        nb = inject_parameters(nbformat.read(path, as_version=4), dict(parameters or {}))
        target = out / path.name
        nbformat.write(nb, target)
        glue_log_path(target).unlink(missing_ok=True)
        written.append(target)
    return written


def glue_log_path(notebook: str | os.PathLike) -> Path:
    """Where the run logs the values the notebook glues: ``<folder>/<stem>.glue.jsonl``."""
    path = Path(notebook)
    return path.with_name(path.stem + GLUE_SUFFIX)


def _chapter_cell_index(nb: Any, code_index: int) -> int:
    """The index among the original chapter's cells of the ``code_index``-th code cell of a prepared copy
    (the injected cell is not one of them: a failure there is named by the cell after it)."""
    position, code = 0, -1
    for cell in nb.cells:
        if cell.cell_type == "code":
            code += 1
            if code == code_index:
                return position
        if INJECTED_TAG not in cell.metadata.get("tags", []):
            position += 1
    return code_index


def failure_line(chapter: str, cell_index: int, traceback: str, message: str = "") -> str:
    """``<chapter> failed in cell <i> at `<line>`: <error>`` from an IPython traceback (ANSI colours allowed)."""
    from .cli import _failing_line

    lines = [line for line in _ANSI.sub("", traceback).splitlines() if line.strip()]
    raising = _failing_line(lines)
    error = lines[-1].strip() if lines else message or "failed"  # IPython ends with "<Name>Error: <message>"
    at = f" at `{raising}`" if raising else ""
    return f"{chapter} failed in cell {cell_index}{at}: {error}"


# --- pytest plugin ---------------------------------------------------------------------------------

def _is_nbval_cell(item: Any) -> bool:
    return type(item).__name__ == "IPyNbCell" and hasattr(item, "cell_num")


@_hookimpl(tryfirst=True)
def pytest_runtest_setup(item: Any) -> None:
    """Before the kernel of a chapter starts (its first cell's setup): point the kernel's glue log and
    progress policy at this chapter."""
    if _is_nbval_cell(item) and item.cell_num == 0:
        from .progress import ENV as PROGRESS_ENV
        from .record import LOG_ENV

        log = glue_log_path(str(item.fspath))
        log.unlink(missing_ok=True)
        log.touch()
        os.environ[LOG_ENV] = str(log)
        os.environ[PROGRESS_ENV] = "0"



def _one_line(item: Any, excinfo: Any) -> str:
    exc = excinfo.value
    chapter = Path(str(item.fspath)).stem
    index = _chapter_cell_index(item.parent.nb, item.cell_num) if getattr(item.parent, "nb", None) else item.cell_num
    traceback = getattr(exc, "inner_traceback", None) or ""
    message = exc.args[1] if len(getattr(exc, "args", ())) > 1 else str(exc)
    if not traceback:
        return f"{chapter} failed in cell {index}: {message}"
    return failure_line(chapter, index, traceback, message)


@_hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Any:
    """A failing chapter cell: the report is one line, and the run stops after it."""
    outcome = yield
    report = outcome.get_result()
    if _is_nbval_cell(item) and report.failed and call.excinfo is not None:
        line = _one_line(item, call.excinfo)
        report.longrepr = line
        item.session.shouldstop = line
        print(f"\nerror: {line}", file=sys.stderr, flush=True)



# --- command line: prepare the copies ------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cbft_core.presentation.chapter_run DIR [--preset P] [-p NAME VALUE]``: prepare the copies."""
    from ..errors import CbftError
    from .cli import REPO, _value, chapters

    parser = argparse.ArgumentParser(prog="python -m cbft_core.presentation.chapter_run",
                                     description="Copy every chapter of _toc.yml into DIR for the nbval run, "
                                                 "with parameters injected.")
    parser.add_argument("out", help="folder for the prepared copies (and the glue logs of the run)")
    parser.add_argument("--preset", default=None, help="inject this preset (default: the chapters' own)")
    parser.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"), default=[],
                        help="inject one more parameter (repeatable); VALUE is a Python literal or a string")
    args = parser.parse_args(argv)
    params = {name: _value(value) for name, value in args.param}
    if args.preset:
        params = {"preset": args.preset, **params}
    try:
        written = prepare(chapters(REPO), Path(args.out), params)
    except CbftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"prepared {len(written)} chapter(s) in {args.out}" + (f" with {params}" if params else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
