// Researcher dashboard behaviours (a static file: the CSP allows no inline script).
// - forms with data-confirm ask before submitting;
// - buttons with data-copy="ID" copy the value of input #ID;
// - #progress[data-progress-url] polls the admin-only JSON endpoint and updates the
//   counters, the vote heatmap and the screening table in place.
(function () {
  "use strict";

  function fillClass(votes, target) {
    if (target <= 0) return "fill-10";
    if (votes > target) return "fill-over";
    return "fill-" + Math.min(10, Math.floor((10 * votes) / target));
  }

  function setText(root, selector, text) {
    var el = root.querySelector(selector);
    if (el) el.textContent = text;
  }

  function render(root, data) {
    Object.keys(data.participants).forEach(function (key) {
      setText(root, '[data-count="' + key + '"]', String(data.participants[key]));
    });
    setText(document, '[data-field="status"]', data.status);
    var t = data.trial_time;
    setText(root, '[data-field="median"]', t.median_s === null ? "—" : t.median_s.toFixed(1) + " s");
    setText(root, '[data-field="trials"]', String(t.n));
    setText(root, '[data-field="updated"]', data.generated_at.slice(0, 19).replace("T", " "));
    var v = data.votes;
    setText(root, '[data-field="total-votes"]', String(v.total_votes));
    setText(root, '[data-field="cells-complete"]', String(v.cells_complete));
    setText(root, '[data-field="fill"]', String(Math.round(100 * v.fill_fraction)));
    v.items.forEach(function (item, i) {
      v.conditions.forEach(function (cond, j) {
        var cell = v.cells[i][j];
        var td = root.querySelector('[data-cell="' + item.id + ":" + cond.id + '"]');
        if (!td || !cell) return;
        td.textContent = String(cell.votes);
        td.title = cell.pending + " assigned, not yet rated";
        td.className = fillClass(cell.votes, v.target);
      });
    });
    var table = root.querySelector('[data-field="screening"] tbody');
    if (table) {
      table.textContent = "";
      data.screening.forEach(function (s) {
        var tr = document.createElement("tr");
        var rate = s.rate === null ? "—" : Math.round(100 * s.rate) + " %";
        [s.check, s.taken, s.passed, rate].forEach(function (value, k) {
          var td = document.createElement("td");
          td.textContent = String(value);
          if (k > 0) td.className = "num";
          tr.appendChild(td);
        });
        table.appendChild(tr);
      });
    }
  }

  function poll(root) {
    var url = root.getAttribute("data-progress-url");
    var seconds = Math.max(2, parseInt(root.getAttribute("data-interval") || "10", 10));
    function tick() {
      if (document.hidden) return;
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) { if (data) render(root, data); })
        .catch(function () { /* keep the last figures; try again next tick */ });
    }
    window.setInterval(tick, seconds * 1000);
    document.addEventListener("visibilitychange", tick);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        if (!window.confirm(form.getAttribute("data-confirm"))) ev.preventDefault();
      });
    });
    document.querySelectorAll("button[data-copy]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var input = document.getElementById(btn.getAttribute("data-copy"));
        if (!input) return;
        input.select();
        var done = function () { btn.textContent = "Copied"; };
        if (navigator.clipboard) navigator.clipboard.writeText(input.value).then(done, done);
        else { document.execCommand("copy"); done(); }
      });
    });
    var progress = document.getElementById("progress");
    if (progress) poll(progress);
  });
})();
