"""Warm chapters: each chapter's execution time (kernel start included) for one or more code trees, interleaved.

Each chapter of ``_toc.yml`` is executed as Jupyter Book executes it — a
fresh kernel through ``nbclient``, the ``preset`` parameter set — with the
model cache warm, so what is measured is what every warm build pays: kernel
start, imports, data, cache reads, evaluation the chapter does itself,
figures. With several ``--trees`` (checkouts of the repository, e.g. before
and after a change) every chapter runs once per tree in turn, each tree with
its own cache folder, and the ratio printed is the median over rounds of the
per-round ratio (load from other processes hits both sides alike). A cell
that raises does not stop the chapter (it is marked ``!``).

    python benchmarks/bench_warm_book.py                           # this tree, the cpu preset, its cache
    python benchmarks/bench_warm_book.py --preset tiny --trees /tmp/before . --caches /tmp/c1 /tmp/c2 --warm-up
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import load_average  # noqa: E402


def chapters(tree: Path) -> list[Path]:
    """The notebooks of ``tree``'s ``_toc.yml``, in order."""
    import yaml

    toc = yaml.safe_load((tree / "_toc.yml").read_text())
    files = [c["file"] for part in toc.get("parts", [toc]) for c in part.get("chapters", [])]
    return [tree / f"{f}.ipynb" for f in files if (tree / f"{f}.ipynb").exists()]


def execute(path: Path, tree: Path, cache: str, preset: str) -> tuple[float, bool]:
    """Seconds to execute ``path`` in a fresh kernel with ``tree`` on the path and ``cache`` as the model cache,
    and whether every cell ran without error."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []):
            cell.source += f"\npreset = {preset!r}"
    os.environ.update(PYTHONPATH=str(tree), CBFT_CACHE_DIR=cache, CBFT_PROGRESS="0", PYTHONHASHSEED="0")
    client = NotebookClient(nb, timeout=1800, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    ok = not any(o.get("output_type") == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    return seconds, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--trees", nargs="+", type=Path, default=[REPO], help="checkouts to compare")
    parser.add_argument("--caches", nargs="+", default=None,
                        help="one model cache per tree (default: $CBFT_CACHE_DIR for every tree)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warm-up", action="store_true", help="execute every chapter once per tree first, untimed")
    parser.add_argument("--only", nargs="*", default=None, help="chapter stems (default: all)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    trees = [t.resolve() for t in args.trees]
    default = os.environ.get("CBFT_CACHE_DIR", str(Path.home() / ".cache" / "cbft_core"))
    caches = args.caches or [default] * len(trees)
    if len(caches) != len(trees):
        parser.error("--caches: give one cache folder per tree")
    stems = [p.stem for p in chapters(trees[0]) if args.only is None or p.stem in args.only]
    print(f"preset {args.preset}; trees {[str(t) for t in trees]}; {load_average()}", flush=True)
    if args.warm_up:
        for stem in stems:
            for tree, cache in zip(trees, caches):
                execute(tree / "book" / f"{stem}.ipynb", tree, cache, args.preset)
        print(f"warmed up; {load_average()}", flush=True)
    times: dict[str, list[list[float]]] = {stem: [[] for _ in trees] for stem in stems}
    ok: dict[str, list[bool]] = {stem: [True] * len(trees) for stem in stems}
    for r in range(args.rounds):
        for stem in stems:
            for k, (tree, cache) in enumerate(zip(trees, caches)):
                seconds, fine = execute(tree / "book" / f"{stem}.ipynb", tree, cache, args.preset)
                times[stem][k].append(seconds)
                ok[stem][k] &= fine
            print(f"round {r + 1} {stem}: " + "  ".join(f"{t[-1]:6.1f} s" for t in times[stem])
                  + f"  ({load_average()})", flush=True)
    print(f"\nmedian seconds per chapter over {args.rounds} rounds ({load_average()}); ! = a cell raised")
    print(f"{'chapter':24s}" + "".join(f"{'tree ' + str(k + 1):>10s}" for k in range(len(trees)))
          + ("   tree 2 / tree 1" if len(trees) > 1 else ""))
    totals = [[0.0] * args.rounds for _ in trees]
    for stem in stems:
        row = f"{stem:24s}"
        for k in range(len(trees)):
            mark = "" if ok[stem][k] else "!"
            row += f"{statistics.median(times[stem][k]):9.1f}{mark or ' '}"
            for r in range(args.rounds):
                totals[k][r] += times[stem][k][r]
        if len(trees) > 1:
            row += f"   {statistics.median(b / a for a, b in zip(times[stem][0], times[stem][1])):.2f}"
        print(row)
    row = f"{'total':24s}" + "".join(f"{statistics.median(t):9.1f} " for t in totals)
    if len(trees) > 1:
        row += f"   {statistics.median(b / a for a, b in zip(totals[0], totals[1])):.2f}"
    print(row)
    if args.json:
        Path(args.json).write_text(json.dumps({"preset": args.preset, "trees": [str(t) for t in trees],
                                               "load": load_average(), "seconds": times, "ok": ok}, indent=1))


if __name__ == "__main__":
    main()
