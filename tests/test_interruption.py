"""End to end: a chapter killed at random points resumes to the same outputs; two runs share one cache.

Both tests run the real command line (``python -m cbft_core``) at the ``tiny``
preset in their own empty cache; together they take about two to three
minutes on two cores.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from cbft_core.study import cache, documents

REPO = Path(__file__).resolve().parents[1]
CHAPTER = REPO / "book" / "03_mechanisms.ipynb"  # the cheapest chapter that trains and caches models
KILL_TRIALS = 6
# outputs that differ between a cold and a warm run by design: progress bars (widgets) and stderr
_SKIPPED_MIME = ("application/vnd.jupyter.widget-view+json",)


def _env(cache_dir: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env[cache.ENV_VAR] = str(cache_dir)
    return env


def _chapter_command(out: Path) -> list[str]:
    return [sys.executable, "-m", "cbft_core", "chapter", str(CHAPTER), "--preset", "tiny", "--quiet",
            "--out", str(out)]


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the command and every process it started (papermill starts the kernel in its own session)."""
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    for p in [psutil.Process(proc.pid), *family] if proc.poll() is None else family:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    proc.wait()
    psutil.wait_procs(family, timeout=30)


def printed_outputs(notebook: Path) -> list[list[Any]]:
    """Per code cell, what it printed, glued, showed as Markdown and drew (stderr and progress bars left out)."""
    cells = json.loads(notebook.read_text())["cells"]
    result = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        shown: list[Any] = []
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                if out["name"] == "stdout":
                    shown.append(("stdout", "".join(out["text"])))
            elif out["output_type"] in ("display_data", "execute_result"):
                data = out.get("data", {})
                if any(m in data for m in _SKIPPED_MIME):
                    continue
                shown.append(("data", {m: "".join(v) if isinstance(v, list) else v for m, v in sorted(data.items())}))
            elif out["output_type"] == "error":
                shown.append(("error", out["ename"], out["evalue"]))
        result.append(shown)
    return result


def _entries(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.rglob("*") if p.is_file() and not p.name.startswith("."))


def _check_entries(cache_dir: Path) -> None:
    for entry in _entries(cache_dir):
        (cache.load_model if entry.suffix == ".pt" else cache.load_json)(entry)  # raises if damaged


def _run_chapter(out: Path, cache_dir: Path) -> float:
    """Execute the chapter to the end; its wall time in seconds."""
    start = time.monotonic()
    done = subprocess.run(_chapter_command(out), env=_env(cache_dir), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return time.monotonic() - start


def test_chapter_killed_at_random_points_resumes_to_identical_outputs(tmp_path):
    # the uninterrupted reference in its own cache: cold (trains) and warm (reads); their durations
    # bound the kill points while the shared cache is incomplete and once it is complete
    reference = tmp_path / "cache-ref"
    cold = _run_chapter(tmp_path / "ref", reference)
    warm = _run_chapter(tmp_path / "ref-warm", reference)
    expected = printed_outputs(tmp_path / "ref" / CHAPTER.name)
    assert sum(len(c) for c in expected) >= 5  # the chapter printed, glued and drew
    assert printed_outputs(tmp_path / "ref-warm" / CHAPTER.name) == expected
    n_entries = len(_entries(reference))

    # one cache, SIGKILLed KILL_TRIALS times at seeded random points, each run resuming from the last
    rng = random.Random("interrupt-03_mechanisms")
    shared = tmp_path / "cache"
    kills: list[tuple[str, float]] = []
    for attempt in range(KILL_TRIALS + 5):
        if len(kills) == KILL_TRIALS:
            break
        phase = "training" if len(_entries(shared)) < n_entries else "reading"
        after = rng.uniform(0.0, cold if phase == "training" else warm)
        proc = subprocess.Popen(_chapter_command(tmp_path / f"killed{attempt}"), env=_env(shared),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + after
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is None:
            kills.append((phase, round(after, 1)))
        _kill_tree(proc)
        _check_entries(shared)  # a kill never leaves a damaged entry under its final name
    assert len(kills) == KILL_TRIALS, kills
    assert any(phase == "training" for phase, _ in kills), kills

    _run_chapter(tmp_path / "rerun", shared)
    assert printed_outputs(tmp_path / "rerun" / CHAPTER.name) == expected
    assert [p.relative_to(shared) for p in _entries(shared)] == [p.relative_to(reference) for p in _entries(reference)]


def test_two_runs_fill_one_empty_cache_at_once(tmp_path):
    shared = tmp_path / "cache"

    def command(out: str) -> list[str]:
        return [sys.executable, "-m", "cbft_core", "run", "--preset", "tiny", "--seeds", "0",
                "-p", "n_train", "256", "--out", str(tmp_path / out)]

    procs = [subprocess.Popen(command(name), env=_env(shared), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for name in ("a", "b")]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-2000:]
    a, b = ((tmp_path / name / "results.json").read_bytes() for name in ("a", "b"))
    assert a == b
    documents.load(documents.RESULTS, tmp_path / "a" / "results.json")
    _check_entries(shared)
    assert not list(shared.rglob("*.tmp"))
    # each entry was computed once: the shared parent was trained by exactly one of the two
    trained = [err.count("parent (seed 0)") > 0 for _, err in outputs]
    assert sum(trained) == 1, [err[-500:] for _, err in outputs]
    # and a third, sequential run finds every entry: no new entry appears
    before = _entries(shared)
    third = subprocess.run(command("c"), env=_env(shared), capture_output=True, text=True, timeout=600)
    assert third.returncode == 0 and "parent (seed 0)" not in third.stderr
    assert _entries(shared) == before
    assert (tmp_path / "c" / "results.json").read_bytes() == a
