"""Shared fixtures: the repository root and the chapters listed in _toc.yml."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from cbft_core.presentation import cli

REPO = Path(__file__).resolve().parents[1]


def toc_files() -> list[str]:
    """Every document named in _toc.yml, in order (without extension)."""
    return cli.toc_files(REPO)


def toc_notebooks() -> list[Path]:
    """The chapters of _toc.yml that are notebooks."""
    return cli.chapters(REPO)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(autouse=True, scope="session")
def _offline_cache(tmp_path_factory):
    """Keep the model cache inside the test session unless the runner chose one."""
    if "CBFT_CACHE_DIR" not in os.environ:
        os.environ["CBFT_CACHE_DIR"] = str(tmp_path_factory.mktemp("cbft-cache"))
    yield


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Run the suite's tensor work on one thread, here and in every process it starts.

    The tests' models and batches are tiny: on two threads OpenMP synchronises after every small op,
    and on a busy machine a descheduled peer thread stalls each one (a midpoint-training test took 61 s
    on two threads and 10 s on one at load 7). Subprocesses (chapters at the tiny preset, the command
    line) inherit ``OMP_NUM_THREADS``; a chapter that sets its own thread count keeps it.
    """
    import torch

    threads = torch.get_num_threads()
    saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    """The book built once per test session from the committed outputs (execution off), -W -n.

    Returns the ``_build/html`` folder. The build's exit status and log are
    checked by tests/test_book.py; other tests (the browser test) reuse it.
    """
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("book")
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    alt = out / "_config.yml"
    alt.write_text(yaml.safe_dump(config, sort_keys=False))
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run(
        [str(jb), "build", str(REPO), "--config", str(alt), "--path-output", str(out),
         "-W", "-n", "--keep-going"],
        capture_output=True, text=True, timeout=900,
    )
    html = out / "_build" / "html"
    (out / "build.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        pytest.fail("book build failed:\n" + proc.stdout[-4000:] + proc.stderr[-4000:])
    return html


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """A copy of cbft_core that the code hasher reads instead of the installed one (tests edit it)."""
    import shutil

    import cbft_core
    from cbft_core.study import codehash

    root = tmp_path / "cbft_core"
    shutil.copytree(Path(cbft_core.__file__).resolve().parent, root, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(codehash, "ROOT", root)
    codehash.clear()
    yield root
    codehash.clear()
