"""What a chapter's imports cost: the heavy optional packages load only where they are used.

Every chapter's kernel pays its imports on every build, warm or cold. scipy
(the Hungarian assignment of permutation alignment), scikit-learn (the digits
data set), jsonschema (validating a results file) and Ray (the sweep engine)
take from a tenth of a second to seconds each, and a chapter that does not
use them must not load them.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys

from conftest import REPO, toc_notebooks

HEAVY = ("scipy", "sklearn", "jsonschema", "ray")


def chapter_imports() -> list[str]:
    """Every ``import``/``from ... import`` statement of the chapters' code cells that names cbft_core."""
    found = []
    for path in toc_notebooks():
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "code" or "%pip" in "".join(cell["source"]):
                continue
            for node in ast.walk(ast.parse("".join(cell["source"]))):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and "cbft_core" in ast.unparse(node):
                    found.append(ast.unparse(node))
    return sorted(set(found))


def test_the_chapters_imports_leave_the_heavy_packages_unloaded():
    statements = chapter_imports()
    assert any("cbft_core.study" in s for s in statements) and any("presentation" in s for s in statements)
    probe = "\n".join(statements + ["import sys",
                                    f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"])
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-2] == "[]", f"loaded by the chapters' imports: {done.stdout.strip()}"


def test_alignment_and_validation_still_load_what_they_need(tmp_path):
    probe = ("import sys, numpy as np\n"
             "from cbft_core.kernels import alignment\n"
             "from cbft_core.study import documents\n"
             "assert 'scipy' not in sys.modules and 'jsonschema' not in sys.modules\n"
             "perm = alignment.match_units([np.array([[0.0, 1.0], [1.0, 0.0]])])[0]\n"
             "assert perm.tolist() == [1, 0], perm\n"
             "documents._validator(documents.RESULTS)\n"
             "print('scipy' in sys.modules, 'jsonschema' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True"]
