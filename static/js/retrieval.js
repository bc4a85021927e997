// The retrieval progress page: polls the job's JSON until it finishes and updates the counts.
// Without this script the page shows the state it was rendered with; reloading refreshes it.
(function () {
  "use strict";

  var panel = document.getElementById("retrieval");
  if (!panel || !window.fetch || panel.dataset.finished === "true") {
    return;
  }
  var INTERVAL_MS = 1000;
  var url = panel.dataset.statusUrl;
  var failures = 0;

  function show(id, value) {
    var element = document.getElementById(id);
    if (element) {
      element.textContent = value === null || value === undefined ? "—" : String(value);
    }
  }

  function update(job) {
    show("retrieval-status", job.status_display);
    show("retrieval-remaining", job.remaining);
    show("retrieval-completed", job.completed);
    show("retrieval-failed", job.failed);
    show("retrieval-warning", job.warning);
    var message = document.getElementById("retrieval-message");
    message.textContent = job.message;
    message.hidden = !job.message;
    if (job.finished) {
      document.getElementById("retrieval-refresh").hidden = true;
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (job) {
        failures = 0;
        update(job);
        if (!job.finished) {
          window.setTimeout(poll, INTERVAL_MS);
        }
      })
      .catch(function () {
        failures += 1; // a signed-out session or a restarting server: back off, then give up
        if (failures < 10) {
          window.setTimeout(poll, INTERVAL_MS * failures * 2);
        }
      });
  }

  window.setTimeout(poll, INTERVAL_MS);
})();
