# Source me: create or reuse the project's environment in .venv (idempotent).
# Re-installs only when requirements.txt or pyproject.toml changed since the last install.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
python_bin="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
  echo "[env] creating .venv with $("$python_bin" --version)"
  "$python_bin" -m venv .venv
fi
stamp=.venv/.cbft-installed
want="$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[env] installing requirements (torch comes from the local wheel cache when available)"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt 2>&1 \
    | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e . 2>&1 \
    | grep -v "^WARNING: Location" || true
  # requirements.txt also pins the optional extra cbft_core[sweep] (Ray), so the sweep's Ray engine works too
  .venv/bin/python -c "import torch, torchvision, jupyter_book, jsonschema, ray, cbft_core" \
    || { echo "[env] installation failed: see the pip output above" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
# Trained models and results are cached here (the library's own default), keyed by a hash of
# their full configuration and of the library's code: the book build, the tests and a reader's
# Jupyter session share one cache, and an entry is never reused by code that would compute it
# differently.
export CBFT_CACHE_DIR="${CBFT_CACHE_DIR:-$HOME/.cache/cbft_core}"
export PYTHONHASHSEED=0
# The pages' browser JavaScript (widgets, MathJax), served from the book's own static files.
source "$repo_root/scripts/vendor-js.sh"
# Debian's Chromium for tests/test_browser.py (the tests only; Playwright never downloads a browser).
if [ "$(basename "$0")" = run-tests ] && [ -z "${CBFT_CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[env] installing Debian's chromium package for the browser test"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
      >/dev/null 2>&1 || echo "[env] could not install chromium: the browser test will be skipped" >&2
  else
    echo "[env] no /usr/bin/chromium (install Debian's chromium package as root, or set CBFT_CHROMIUM):" \
         "the browser test will be skipped" >&2
  fi
fi
