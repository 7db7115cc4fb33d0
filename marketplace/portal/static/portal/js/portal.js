/* Portal behaviour: charts from JSON islands, relaxation buttons, aria-invalid after htmx swaps.
   No inline scripts: every page's data comes in <script type="application/json"> elements. */
(function () {
  "use strict";

  var charts = {};

  function readJson(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  /* green (low) -> amber -> red (high); grey when unknown */
  function carbonColour(value, lo, hi) {
    if (value === null || value === undefined) { return "rgba(120,126,138,0.85)"; }
    var t = hi > lo ? (value - lo) / (hi - lo) : 0;
    var r = Math.round(t < 0.5 ? 40 + 400 * t : 240);
    var g = Math.round(t < 0.5 ? 150 : 150 - 220 * (t - 0.5));
    return "rgba(" + r + "," + g + ",60,0.9)";
  }

  function money(v) { return "$" + Number(v).toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2}); }

  function recommendationScatter(canvas, data) {
    var carbons = data.points.map(function (p) { return p.carbon; }).filter(function (c) { return c !== null; });
    var lo = carbons.length ? Math.min.apply(null, carbons) : 0;
    var hi = carbons.length ? Math.max.apply(null, carbons) : 0;
    function ds(points) {
      return points.map(function (p) { return {x: p.x, y: p.y, p: p}; });
    }
    var front = data.points.filter(function (p) { return p.pareto; }).sort(function (a, b) { return a.x - b.x; });
    var others = data.points.filter(function (p) { return !p.pareto; });
    return new window.Chart(canvas, {
      type: "scatter",
      data: {
        datasets: [
          {label: "Pareto front (no cheaper, faster and greener option)", data: ds(front), showLine: true,
           borderColor: "#1d6b35", borderWidth: 2, pointRadius: 8, pointHoverRadius: 10, pointBorderWidth: 3,
           pointBorderColor: "#1d6b35", backgroundColor: "#1d6b35",
           pointBackgroundColor: front.map(function (p) { return carbonColour(p.carbon, lo, hi); }), order: 1},
          {label: "Other candidates", data: ds(others), pointRadius: 5, pointHoverRadius: 7, borderColor: "#4a5160",
           backgroundColor: "#9aa1ad",
           pointBackgroundColor: others.map(function (p) { return carbonColour(p.carbon, lo, hi); }), order: 2}
        ]
      },
      options: {
        maintainAspectRatio: false, animation: false,
        scales: {
          x: {title: {display: true, text: data.x_label}, beginAtZero: false},
          y: {title: {display: true, text: "Total job cost (USD)"}, ticks: {callback: function (v) { return money(v); }}}
        },
        plugins: {
          legend: {position: "bottom", labels: {generateLabels: function (chart) {
            return chart.data.datasets.map(function (d, i) {
              return {text: d.label, datasetIndex: i, hidden: !chart.isDatasetVisible(i), lineWidth: 2,
                      fillStyle: i === 0 ? "#ffffff" : "#9aa1ad", strokeStyle: i === 0 ? "#1d6b35" : "#4a5160"};
            });
          }}},
          tooltip: {callbacks: {label: function (ctx) {
            var p = ctx.raw.p;
            return "#" + p.rank + " " + p.label + ": " + money(p.y) + ", " + p.x_text +
              ", " + (p.carbon === null ? "carbon unknown" : p.carbon + " kg CO2e");
          }}}
        }
      }
    });
  }

  function seriesChart(canvas, data) {
    var colours = ["#1f4fa8", "#1d6b35", "#8a5300", "#b0261c"];
    var round = data.type === "doughnut";
    var options = {maintainAspectRatio: false, animation: false,
                   plugins: {legend: {display: !round && data.datasets.length > 1, position: "bottom"}}};
    if (round) {
      options.cutout = "70%";
      options.plugins.tooltip = {enabled: false};
    } else {
      options.scales = {x: {stacked: !!data.stacked},
                        y: Object.assign({beginAtZero: true, stacked: !!data.stacked}, data.y || {})};
    }
    return new window.Chart(canvas, {
      type: data.type || "line",
      data: {labels: data.labels, datasets: data.datasets.map(function (d, i) {
        return Object.assign(round ? {} : {borderColor: colours[i % 4], backgroundColor: colours[i % 4],
                                           tension: 0.2, pointRadius: 2}, d);
      })},
      options: options
    });
  }

  function initCharts(root) {
    if (!window.Chart) { return; }
    (root || document).querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var data = readJson(canvas.getAttribute("data-chart"));
      if (!data) { return; }
      if (charts[canvas.id]) { charts[canvas.id].destroy(); }
      charts[canvas.id] = canvas.getAttribute("data-kind") === "recommendations"
        ? recommendationScatter(canvas, data) : seriesChart(canvas, data);
      canvas.setAttribute("data-ready", "true");
    });
  }

  function syncInvalid(root) {
    (root || document).querySelectorAll(".error-text[id^='err-']").forEach(function (slot) {
      var input = document.querySelector("[aria-describedby~='" + slot.id + "']");
      if (!input) { return; }
      if (slot.textContent.trim()) { input.setAttribute("aria-invalid", "true"); }
      else { input.removeAttribute("aria-invalid"); }
    });
  }

  /* "Apply" on a suggested relaxation: set the form field, then let the form's htmx trigger re-run. */
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-apply-field]");
    if (!button) { return; }
    event.preventDefault();
    var form = document.getElementById(button.getAttribute("data-form"));
    var field = form && form.elements[button.getAttribute("data-apply-field")];
    if (!field) { return; }
    var value = button.getAttribute("data-apply-value");
    if (field.type === "checkbox") { field.checked = value === "true"; } else { field.value = value; }
    var details = field.closest("details");
    if (details) { details.open = true; }
    field.dispatchEvent(new Event("change", {bubbles: true}));
    var status = document.getElementById("relax-status");
    if (status) { status.textContent = "Applied: " + button.getAttribute("data-apply-text") + ". Updating…"; }
  });

  /* "Show all options": reveal a hidden part of a table. */
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-reveal]");
    if (!button) { return; }
    var target = document.getElementById(button.getAttribute("data-reveal"));
    if (!target) { return; }
    target.hidden = !target.hidden;
    button.setAttribute("aria-expanded", String(!target.hidden));
    button.textContent = target.hidden ? button.getAttribute("data-more-text") || button.textContent : "Show fewer";
  });

  document.addEventListener("DOMContentLoaded", function () { initCharts(); });
  document.addEventListener("htmx:afterSettle", function (event) {
    initCharts(event.detail.elt);
    syncInvalid();
  });
  /* A rate-limited update (429) carries the form's "too many requests" notice: show it like any other answer. */
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.xhr && event.detail.xhr.status === 429) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
