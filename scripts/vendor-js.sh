# Source me (from ensure-env.sh): fetch the JavaScript the static HTML book runs in the
# reader's browser -- require.js and @jupyter-widgets/html-manager's embed-amd.js (the
# sliders) and MathJax (the equations) -- from the npm registry into book/_static/vendor/
# (git-ignored, never committed), so the published pages load them from the book itself
# instead of public CDNs and work offline. Idempotent: skipped when the pinned versions
# are there. Without npm or the registry the book falls back to the CDN defaults
# (cbft_core/sphinx_assets.py); nothing fails.
vendor_dir=book/_static/vendor
vendor_pkgs="requirejs@2.3.8 @jupyter-widgets/html-manager@1.0.15 mathjax@3.2.2"
vendor_files="requirejs/require.js widgets-html-manager/embed-amd.js mathjax/tex-mml-chtml.js"
vendor_ok=1
[ "$(cat "$vendor_dir/.versions" 2>/dev/null)" = "$vendor_pkgs" ] || vendor_ok=0
for f in $vendor_files; do [ -f "$vendor_dir/$f" ] || vendor_ok=0; done
if [ "$vendor_ok" = 0 ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "[env] npm not found: the book will load require.js, the widget manager and MathJax from" \
         "public CDNs (install Node.js with npm and re-run to serve local copies)" >&2
  else
    echo "[env] fetching the book's browser JavaScript from npm: $vendor_pkgs"
    vendor_tmp="$(mktemp -d)"
    # shellcheck disable=SC2086
    if (cd "$vendor_tmp" && timeout 300 npm pack --silent $vendor_pkgs >/dev/null \
        && mkdir rq hm mj && tar xzf requirejs-*.tgz -C rq \
        && tar xzf jupyter-widgets-html-manager-*.tgz -C hm && tar xzf mathjax-*.tgz -C mj); then
      rm -rf "$vendor_dir"
      mkdir -p "$vendor_dir/requirejs" "$vendor_dir/widgets-html-manager" "$vendor_dir/mathjax/output"
      cp "$vendor_tmp"/rq/package/{require.js,package.json} "$vendor_dir/requirejs/"
      # embed-amd.js bundles base, controls and output and loads its fonts from its own
      # folder; the CommonJS bundle and the source maps are not needed.
      find "$vendor_tmp/hm/package/dist" -maxdepth 1 -type f ! -name embed.js ! -name '*.map' \
        ! -name libembed-amd.js -exec cp {} "$vendor_dir/widgets-html-manager/" \;
      cp "$vendor_tmp/hm/package/package.json" "$vendor_dir/widgets-html-manager/"
      # MathJax's combined TeX component, with the components and fonts it loads on demand.
      mj="$vendor_tmp/mj/package"
      cp -r "$mj"/es5/{tex-mml-chtml.js,a11y,adaptors,input,sre,ui} "$mj"/{LICENSE,package.json} "$vendor_dir/mathjax/"
      cp -r "$mj"/es5/output/chtml "$vendor_dir/mathjax/output/"
      echo "$vendor_pkgs" > "$vendor_dir/.versions"
    else
      echo "[env] could not fetch the book's browser JavaScript from npm: it will load it from public CDNs" >&2
    fi
    rm -rf "$vendor_tmp"
  fi
fi
