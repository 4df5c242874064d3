"""A Colab reader, end to end: the reader notebooks' own install cell against the published repository.

``test_reader_notebooks_run_as_on_colab`` stands in for Colab:

- a new virtual environment (this interpreter's Python 3.11) with Colab's
  widget and kernel stack from PyPI — ipywidgets 7.7.1 (no ``Stack``),
  IPython 7.34.0, ipykernel 6.17.1 — and every other third-party package
  (PyTorch included) from the interpreter running the tests through one
  ``.pth`` line (no PyTorch download), after the environment's own;
- the published repository is a local bare git repository holding the
  current working tree on the branch ``repository.branch``; git rewrites the
  public URL to it (``url.<local>.insteadOf``), so the install cell's
  ``%pip install "cbft_core[book] @ git+<public url>@<branch>"`` runs as
  written and installs ``cbft_core`` *non-editable* from that remote;
- every reader notebook of ``notebooks/`` is copied to a folder outside the
  repository and executed with nbclient in a kernel of that environment, at
  the ``tiny`` preset (injected after the parameters cell). The first one
  installs the library; the others find it (the cell installs only when it is
  missing). The chapter-1 run also moves the barrier explorer's slider in the
  kernel and its saved widget state is checked: ipywidgets 7 draws one frame
  image and no ``Tab`` (no empty tab bars).

Measured on the 2-core reference machine under ``nice -n 19``: 471 s with an
empty model cache while other training jobs kept the load near 7 (environment
14 s; the install cell and the six notebooks at ``tiny`` 456 s), 142 s with
the ``tiny`` models already cached and the machine quiet (15 s + 127 s). It
needs PyPI (the three pinned packages, their few missing dependencies and
setuptools for the build), so it runs only when ``CBFT_FRESH_INSTALL=1``,
like tests/test_fresh_install.py.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import nbformat
import pytest

from cbft_core.presentation import chapter_run, launch, reader
from conftest import REPO, toc_notebooks

COLAB = ["ipywidgets==7.7.1", "ipython==7.34.0", "ipykernel==6.17.1"]
PROBE = """\
import ipywidgets, cbft_core
assert ipywidgets.__version__ == "7.7.1" and not hasattr(ipywidgets, "Stack"), ipywidgets.__version__
slider = frames.children[0].children[1]
image = frames.children[-1]
assert isinstance(image, ipywidgets.Image), type(image)
before = image.value
slider.value = (slider.value + 1) % (slider.max + 1)
assert image.value != before, "moving the t slider did not change the frame"
print("explorer moved", cbft_core.__file__)
"""
RUNNER = """\
import sys, nbformat
from nbclient import NotebookClient
for src, dst in zip(sys.argv[1::2], sys.argv[2::2]):
    nb = nbformat.read(src, as_version=4)
    NotebookClient(nb, timeout=1800, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": sys.argv[0].rsplit("/", 1)[0]}}).execute()
    nbformat.write(nb, dst)
    print("executed", dst, flush=True)
"""


def _git(*args: str, cwd: Path, env: dict) -> None:
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr[-1500:]}"


def _publish(remote: Path, branch: str, scratch: Path, env: dict) -> None:
    """The working tree (tracked and untracked, not ignored) as one commit on ``branch`` of a bare ``remote``."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    tree = scratch / "tree"
    for name in filter(None, files):
        if (REPO / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, tree / name)
    _git("init", "-q", "-b", branch, cwd=tree, env=env)
    _git("add", "-A", cwd=tree, env=env)
    _git("-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm", "published", cwd=tree, env=env)
    _git("init", "-q", "--bare", str(remote), cwd=scratch, env=env)
    _git("push", "-q", str(remote), f"{branch}:{branch}", cwd=tree, env=env)


@pytest.mark.skipif(os.environ.get("CBFT_FRESH_INSTALL") != "1",
                    reason="slow (a new environment and every reader notebook at tiny, ~5 min): set CBFT_FRESH_INSTALL=1")
def test_reader_notebooks_run_as_on_colab(tmp_path: Path):
    start = time.perf_counter()
    config = launch.read_config(REPO)
    public, branch = config["repository"]["url"].rstrip("/").removesuffix(".git"), launch.install_ref(config)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "CBFT_GLUE_LOG")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=str(tmp_path / "gitconfig"), GIT_TERMINAL_PROMPT="0")
    remote = tmp_path / "published.git"
    _publish(remote, branch, tmp_path, env)
    _git("config", "--global", f"url.{remote.as_uri()}.insteadOf", public, cwd=tmp_path, env=env)

    def run(*args: str, cwd: Path = tmp_path, timeout: int = 1800) -> subprocess.CompletedProcess:
        proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)
        assert proc.returncode == 0, f"{' '.join(args[:4])} ... failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        return proc

    venv = tmp_path / "colab"
    run(sys.executable, "-m", "venv", str(venv))
    python = str(venv / "bin" / "python")
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (site / "zz_base_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *COLAB[1:])
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", COLAB[0],
        "ipython_genutils==0.2.0")
    run(python, "-m", "ipykernel", "install", "--prefix", str(venv), "--name", "python3")
    missing = subprocess.run([python, "-c", "import cbft_core"], env=env, cwd=tmp_path, capture_output=True)
    assert missing.returncode != 0, "cbft_core is importable before the install cell ran"
    ready = time.perf_counter()

    work = tmp_path / "colab-files"  # like Colab: the notebooks alone, no repository around them
    work.mkdir()
    pairs: list[str] = []
    for chapter in toc_notebooks():
        nb = chapter_run.inject_parameters(nbformat.read(reader.reader_path(chapter, REPO), as_version=4),
                                           {"preset": "tiny"})
        if chapter.stem == "01_mode_connectivity":
            nb.cells.append(nbformat.v4.new_code_cell(PROBE))
        nbformat.write(nb, work / chapter.name)
        pairs += [str(work / chapter.name), str(work / f"executed-{chapter.name}")]
    (work / "run.py").write_text(RUNNER)
    run(python, str(work / "run.py"), *pairs, cwd=work, timeout=3600)
    done = time.perf_counter()

    for executed in sorted(work.glob("executed-*.ipynb")):
        nb = nbformat.read(executed, as_version=4)
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{executed.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
        outputs = json.dumps([c.get("outputs", []) for c in nb.cells])
        assert str(REPO) not in outputs, f"{executed.name} reached into the repository"
    first = nbformat.read(work / f"executed-{toc_notebooks()[0].name}", as_version=4)
    installed = "".join(o.get("text", "") for o in first.cells[-1].outputs)
    assert installed.startswith("explorer moved ") and installed.split()[-1].startswith(str(site)), installed
    assert not (site / "__editable__.cbft_core-0.1.0.pth").exists() and not list(site.glob("__editable__*cbft*")), \
        "cbft_core was installed editable"
    direct = next(site.glob("cbft_core-*.dist-info")) / "direct_url.json"
    origin = json.loads(direct.read_text())
    assert origin.get("vcs_info", {}).get("requested_revision") == branch and origin["url"].startswith(public), origin

    state = first.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    models = [m["model_name"] for m in state.values()]
    assert "ImageModel" in models and "IntSliderModel" in models, sorted(set(models))
    assert "TabModel" not in models and "AccordionModel" not in models, "ipywidgets 7 explorer draws tab bars"
    for name in ("ipython", "ipykernel", "ipywidgets"):
        version = run(python, "-c", f"from importlib.metadata import version; print(version('{name}'))").stdout
        assert version.strip() == dict(p.split("==") for p in COLAB)[name], (
            f"installing the book replaced Colab's {name} with {version.strip()}")
    print(f"colab reader test: environment {ready - start:.0f} s, notebooks {done - ready:.0f} s, "
          f"total {time.perf_counter() - start:.0f} s")
