// Set-up for the widget manager of the static pages (vendor/widgets-html-manager/embed-amd.js).
// Loaded before require.js, which reads the global `require` object below as its configuration.

// The widget manager loads its icon fonts from the folder require.js gives its AMD modules,
// which is next to the page by default: map the modules to the folder that serves the script.
var require = (function () {
  var folder = new URL("vendor/widgets-html-manager/", document.currentScript.src).href;
  return {
    paths: {
      "@jupyter-widgets/html-manager": folder + "embed-amd",
      "@jupyter-widgets/html-manager/dist": folder.slice(0, -1),
    },
  };
})();

// Widgets typeset LaTeX in their labels through the MathJax 2 API (MathJax.Hub.Queue); the
// book loads MathJax 3 (deferred, so it exists by DOMContentLoaded). Give them that entry point.
document.addEventListener("DOMContentLoaded", function () {
  var mathjax = window.MathJax;
  if (mathjax && mathjax.startup && !mathjax.Hub) {
    mathjax.Hub = {
      Queue: function (job) {
        var element = job[2];
        mathjax.startup.promise.then(function () { return mathjax.typesetPromise([element]); });
      },
    };
  }
});
