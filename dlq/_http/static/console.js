// The console's only script: live progress of a bulk redrive (polls its JSON).
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (!box) { return; }
  var url = box.getAttribute("data-progress-url");
  var ended = ["completed", "stopped", "cancelled", "terminated", "failed", "timed_out"];
  function show(p) {
    box.querySelectorAll("[data-field]").forEach(function (el) {
      var key = el.getAttribute("data-field");
      if (key === "percent") {
        el.style.width = (p.total ? Math.round(100 * p.done / p.total) : 100) + "%";
      } else if (key === "current_rate") {
        el.textContent = Number(p.current_rate || 0).toFixed(1);
      } else {
        el.textContent = p[key] === null || p[key] === undefined ? "" : String(p[key]);
      }
    });
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (p) {
        if (p) { show(p); }
        if (!p || ended.indexOf(p.status) < 0) { setTimeout(poll, 1000); }
      })
      .catch(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 500);
}());
