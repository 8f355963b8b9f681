// Draws the report's charts from the embedded run data and wires the
// failing-case filter. No dependencies: the report must open offline.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("run-data").textContent);
  var SVG = "http://www.w3.org/2000/svg";

  function el(name, attrs, text) {
    var e = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function band(score) {
    return score < 0.4 ? "low" : score < 0.7 ? "mid" : "high";
  }

  // Attempts per tenth of the score range.
  function histogram(svg, bins) {
    var W = 640, H = 240, left = 36, bottom = 28, top = 12;
    var plotW = W - left - 8, plotH = H - bottom - top;
    var max = Math.max.apply(null, bins.concat([1]));
    var bw = plotW / bins.length;
    svg.appendChild(el("line", { "class": "axis", x1: left, y1: top + plotH, x2: W - 8, y2: top + plotH }));
    svg.appendChild(el("text", { x: left - 6, y: top + 8, "text-anchor": "end" }, String(max)));
    svg.appendChild(el("text", { x: left - 6, y: top + plotH, "text-anchor": "end" }, "0"));
    bins.forEach(function (n, i) {
      var h = plotH * n / max;
      var r = el("rect", {
        "class": "bar " + band((i + 0.5) / bins.length),
        x: left + i * bw + 2, y: top + plotH - h, width: bw - 4, height: Math.max(h, 0),
        "data-count": n
      });
      r.appendChild(el("title", {}, (i * 10) + "-" + (i * 10 + 10) + ": " + n + " attempt(s)"));
      svg.appendChild(r);
      svg.appendChild(el("text", { x: left + i * bw, y: H - 10, "text-anchor": "middle" }, String(i * 10)));
    });
    svg.appendChild(el("text", { x: W - 8, y: H - 10, "text-anchor": "end" }, "100"));
  }

  // Mean score per category, one horizontal bar each.
  function categories(svg, cats) {
    var row = 26, labelW = 170, W = 640, barW = W - labelW - 70;
    svg.setAttribute("viewBox", "0 0 " + W + " " + Math.max(cats.length * row + 8, 40));
    cats.forEach(function (c, i) {
      var y = 4 + i * row;
      svg.appendChild(el("text", { x: labelW - 8, y: y + 15, "text-anchor": "end" }, c.name));
      svg.appendChild(el("rect", { "class": "track", x: labelW, y: y + 3, width: barW, height: 16 }));
      var s = c.mean === null ? 0 : c.mean;
      var r = el("rect", { "class": "bar " + band(s), x: labelW, y: y + 3, width: barW * s, height: 16 });
      r.appendChild(el("title", {}, c.name + ": mean " + (c.mean === null ? "-" : (s * 100).toFixed(1)) +
        ", pass rate " + (c.pass_rate * 100).toFixed(1) + "%"));
      svg.appendChild(r);
      svg.appendChild(el("text", { x: labelW + barW + 6, y: y + 15 },
        c.mean === null ? "-" : (s * 100).toFixed(1)));
    });
  }

  histogram(document.getElementById("score-chart"), data.histogram);
  categories(document.getElementById("category-chart"), data.categories);

  var filter = document.getElementById("category-filter");
  if (filter) {
    filter.addEventListener("change", function () {
      document.querySelectorAll(".failing-case").forEach(function (a) {
        a.classList.toggle("hidden", filter.value !== "" && a.getAttribute("data-category") !== filter.value);
      });
    });
  }
  document.body.setAttribute("data-rendered", "true");
})();
