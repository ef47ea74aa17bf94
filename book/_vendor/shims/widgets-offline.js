/*
 * Glue so that the vendored ipywidgets html-manager works offline with MathJax 3.
 * Written for this book (not from npm); loaded by myst-nb on pages with widgets, after
 * require.js and before embed-amd.js (see nb_ipywidgets_js in _config.yml).
 *
 * 1. The bundled modules (@jupyter-widgets/base, controls, ..., html-manager/dist/
 *    libembed-amd) derive the URL of their icon fonts from their AMD module ids, which
 *    require.js resolves against the page's folder. Map the ids so that every one
 *    resolves to the folder holding embed-amd.js and the fonts.
 * 2. ipywidgets typesets widget labels with the MathJax 2 API (MathJax.Hub.Queue), which
 *    throws under the book's MathJax 3. Provide a MathJax.Hub.Queue that delegates to
 *    MathJax 3's typesetPromise once MathJax has loaded (it is a deferred script, so it
 *    has run by DOMContentLoaded, before the widgets render on window load).
 */
(function () {
  "use strict";
  var here = document.currentScript && document.currentScript.src;
  if (here && window.require && window.require.config) {
    var dist = new URL("../html-manager", here).href;
    window.require.config({
      paths: { "@jupyter-widgets": dist, "@jupyter-widgets/html-manager/dist": dist },
    });
  }

  function installHubShim() {
    var mj = window.MathJax;
    if (!mj || mj.Hub || !mj.startup) return; // no MathJax, or MathJax 2 already has a Hub
    mj.Hub = {
      Queue: function (command) {
        var element = command && command[2];
        mj.startup.promise
          .then(function () { return mj.typesetPromise(element ? [element] : undefined); })
          .catch(function (err) { console.warn("MathJax typeset of a widget failed", err); });
      },
    };
  }
  document.addEventListener("DOMContentLoaded", installHubShim);
})();
