/* Plotly figures that follow the page's light or dark theme. Ours, not from npm.
 *
 * plotly.py writes its light "plotly" template into every figure (white paper, dark
 * text), so in the theme's dark mode (<html data-theme="dark">) each figure would be a
 * glaring white panel. book/_ext/offline_book.py loads this file right after
 * plotly.min.js on the pages that have figures. While the page is dark, a figure is drawn
 * with its own template plus DARK below: transparent paper, so the page shows through,
 * light text, faint grid lines, dark menu buttons. Trace colours and colour scales are
 * the figure's own. Switching the theme redraws every figure with the matching template.
 */
(function () {
  "use strict";
  if (!window.Plotly) return;

  var GRID = "#2f3a48";
  var DARK = {
    layout: {
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(255,255,255,0.04)",
      font: {color: "#dce3ea"},
      xaxis: {gridcolor: GRID, linecolor: "#506784", zerolinecolor: "#46536a", tickcolor: "#506784"},
      yaxis: {gridcolor: GRID, linecolor: "#506784", zerolinecolor: "#46536a", tickcolor: "#506784"},
      annotationdefaults: {arrowcolor: "#dce3ea"},
      shapedefaults: {line: {color: "#dce3ea"}},
      sliderdefaults: {bgcolor: "#c8d4e3", bordercolor: "#14181e", borderwidth: 1, tickwidth: 0},
      updatemenudefaults: {bgcolor: "#3b4a5e", bordercolor: "#506784", borderwidth: 1},
    },
  };

  function isDark() {
    return document.documentElement.dataset.theme === "dark";
  }

  function isObject(value) {
    return value && typeof value === "object" && !Array.isArray(value);
  }

  // A deep copy of `base` with `extra` merged in (objects merged, anything else replaced).
  function merged(base, extra) {
    var out = isObject(base) ? JSON.parse(JSON.stringify(base)) : {};
    Object.keys(extra).forEach(function (key) {
      out[key] = isObject(extra[key]) ? merged(out[key], extra[key]) : extra[key];
    });
    return out;
  }

  function template(light) {
    return isDark() ? merged(light || {}, DARK) : light;
  }

  // Figures drawn from now on: remember their own template, start in the page's theme.
  var newPlot = Plotly.newPlot;
  Plotly.newPlot = function (gd, data, layout, config) {
    var div = typeof gd === "string" ? document.getElementById(gd) : gd;
    if (div && layout) {
      div._lightTemplate = layout.template || null;
      layout = Object.assign({}, layout, {template: template(div._lightTemplate)});
    }
    return newPlot.call(this, gd, data, layout, config);
  };

  // The reader switches the theme: redraw every figure drawn so far.
  var shown = isDark();
  new MutationObserver(function () {
    if (isDark() === shown) return;
    shown = isDark();
    document.querySelectorAll(".js-plotly-plot").forEach(function (gd) {
      if (gd._lightTemplate !== undefined) {
        Plotly.relayout(gd, {template: template(gd._lightTemplate)});
      }
    });
  }).observe(document.documentElement, {attributes: true, attributeFilter: ["data-theme"]});
})();
