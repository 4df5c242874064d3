// Layout helpers of the book's pages on narrow screens (loaded by _config.yml: html_js_files).

// Column names on every table cell of an article (data-label), for the stacked layout of cbft.css on
// phones. Tables written by cbft_core.presentation.tables carry them already; this names the cells
// of the others (Markdown tables of the prose, and tables from outputs written before the attribute).
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("article table").forEach(function (table) {
    var heads = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) {
      return th.textContent.trim();
    });
    if (!heads.length) return;
    table.querySelectorAll("tbody tr").forEach(function (row) {
      Array.prototype.forEach.call(row.children, function (cell, k) {
        if (!cell.hasAttribute("data-label") && heads[k] !== undefined) {
          cell.setAttribute("data-label", heads[k]);
          if (heads[k].toLowerCase() === "verdict") cell.classList.add("cbft-verdict");
        }
      });
    });
  });
});

// Display equations wider than the text column (MathJax 3 does not break lines) are typeset smaller,
// down to 70 %, until they fit; one that still does not fit scrolls inside itself and is marked
// (class cbft-scrolls: a shadow at its edge says there is more). Redone when the window is resized.
(function () {
  var MIN_SCALE = 0.7;
  function fit() {
    document.querySelectorAll('article mjx-container[display="true"]').forEach(function (eq) {
      // MathJax sets its own scale as an inline font size: keep it as the base
      if (eq.dataset.cbftBase === undefined) eq.dataset.cbftBase = eq.style.fontSize || "100%";
      var base = parseFloat(eq.dataset.cbftBase);
      eq.style.fontSize = eq.dataset.cbftBase;
      eq.dataset.cbftScale = "1";
      eq.classList.remove("cbft-scrolls");
      var box = eq.clientWidth, need = eq.scrollWidth;
      if (!box || need <= box + 1) return;
      var scale = Math.max(MIN_SCALE, (0.98 * box) / need);
      eq.style.fontSize = (base * scale).toFixed(1) + "%";
      eq.dataset.cbftScale = scale.toFixed(3);
      if (eq.scrollWidth > eq.clientWidth + 1) eq.classList.add("cbft-scrolls");
    });
  }
  var pending = null;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(fit, 150);
  });
  window.addEventListener("load", function () {
    var mathjax = window.MathJax;
    if (mathjax && mathjax.startup && mathjax.startup.promise) mathjax.startup.promise.then(fit);
    else fit();
  });
})();
