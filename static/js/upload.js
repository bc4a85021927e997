// The upload page, improved: drag and drop of files and folders, batches small enough for the
// server's per-request file limit, a progress bar, and the results listed without a reload.
// Without this script the form posts as it is and the server renders the same results.
(function () {
  "use strict";

  var form = document.getElementById("upload-form");
  if (!form || !window.FormData || !window.XMLHttpRequest) {
    return;
  }
  var BATCH_BYTES = 256 * 1024 * 1024;
  var maxBytes = parseInt(form.dataset.maxBytes, 10) || Infinity;
  var dropZone = document.getElementById("upload-drop-zone");
  var inputs = [document.getElementById("upload-files"), document.getElementById("upload-folder")];
  var submit = document.getElementById("upload-submit");
  var progressArea = document.getElementById("upload-progress-area");
  var progress = document.getElementById("upload-progress");
  var status = document.getElementById("upload-status");
  var results = document.getElementById("upload-results");
  var heading = document.getElementById("upload-results-heading");
  var summary = document.getElementById("upload-summary");
  var studyList = document.getElementById("upload-studies");
  var fileList = document.getElementById("upload-file-list");
  var dropped = [];

  function say(text) {
    status.textContent = text;
  }

  function selectedFiles() {
    var files = dropped.slice();
    inputs.forEach(function (input) {
      if (input && input.files) {
        Array.prototype.push.apply(files, Array.prototype.slice.call(input.files));
      }
    });
    return files;
  }

  function batchesOf(files) {
    var maxFiles = Math.max(1, parseInt(form.dataset.maxFiles, 10) || 100);
    var batches = [];
    var current = [];
    var size = 0;
    files.forEach(function (file) {
      if (current.length && (current.length >= maxFiles || size + file.size > BATCH_BYTES)) {
        batches.push(current);
        current = [];
        size = 0;
      }
      current.push(file);
      size += file.size;
    });
    if (current.length) {
      batches.push(current);
    }
    return batches;
  }

  // --- Drag and drop, folders included -------------------------------------------------------
  function filesOfEntry(entry) {
    if (entry.isFile) {
      return new Promise(function (resolve) {
        entry.file(function (file) { resolve([file]); }, function () { resolve([]); });
      });
    }
    if (!entry.isDirectory) {
      return Promise.resolve([]);
    }
    var reader = entry.createReader();
    var children = [];
    return new Promise(function (resolve) {
      (function readMore() {
        // readEntries hands out a directory in pieces: call it until it returns nothing.
        reader.readEntries(function (batch) {
          if (!batch.length) {
            Promise.all(children.map(filesOfEntry)).then(function (lists) {
              resolve([].concat.apply([], lists));
            });
            return;
          }
          Array.prototype.push.apply(children, batch);
          readMore();
        }, function () { resolve([]); });
      })();
    });
  }

  if (dropZone) {
    document.getElementById("upload-drop-help").hidden = false;
    ["dragenter", "dragover"].forEach(function (type) {
      dropZone.addEventListener(type, function (event) {
        event.preventDefault();
        event.dataTransfer.dropEffect = "copy";
        form.classList.add("dragging");
      });
    });
    dropZone.addEventListener("dragleave", function () {
      form.classList.remove("dragging");
    });
    dropZone.addEventListener("drop", function (event) {
      event.preventDefault();
      form.classList.remove("dragging");
      var items = event.dataTransfer.items;
      var pending = [];
      // Entries must be taken while the event lasts; reading them can wait.
      for (var i = 0; items && i < items.length; i++) {
        var entry = items[i].webkitGetAsEntry ? items[i].webkitGetAsEntry() : null;
        if (entry) {
          pending.push(filesOfEntry(entry));
        } else if (items[i].kind === "file") {
          pending.push(Promise.resolve([items[i].getAsFile()]));
        }
      }
      if (!items) {
        pending.push(Promise.resolve(Array.prototype.slice.call(event.dataTransfer.files)));
      }
      say("Reading the dropped files…");
      Promise.all(pending).then(function (lists) {
        lists.forEach(function (list) {
          Array.prototype.push.apply(dropped, list.filter(Boolean));
        });
        var count = selectedFiles().length;
        say(count + " file" + (count === 1 ? "" : "s") + " ready. Press Upload to send them.");
      });
    });
  }

  // --- Sending, one batch at a time ----------------------------------------------------------
  function send(batch, sentBefore, total, index, count) {
    return new Promise(function (resolve) {
      var data = new FormData();
      data.append("csrfmiddlewaretoken", form.elements.csrfmiddlewaretoken.value);
      batch.forEach(function (file) {
        data.append("files", file, file.name);
      });
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action || window.location.href);
      xhr.setRequestHeader("Accept", "application/json");
      var label = count > 1 ? "batch " + (index + 1) + " of " + count : "your files";
      xhr.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable && total > 0) {
          var percent = Math.min(100, Math.round(((sentBefore + event.loaded) / total) * 100));
          progress.value = percent;
          say("Sending " + label + ": " + percent + "%");
        }
      });
      xhr.upload.addEventListener("load", function () {
        say("Checking and storing " + label + "…");
      });
      xhr.addEventListener("load", function () {
        var body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch (error) {
          body = null;
        }
        if (xhr.status === 200 && body && body.files) {
          resolve(body);
        } else if (xhr.responseURL && xhr.responseURL.indexOf("/accounts/login/") !== -1) {
          resolve(failedBatch(batch, "you were signed out: sign in again, then upload these files again"));
        } else {
          var reason = (body && body.error) || "the server could not take this batch (" + xhr.status + ")";
          resolve(failedBatch(batch, reason));
        }
      });
      xhr.addEventListener("error", function () {
        resolve(failedBatch(batch, "the connection failed; try again"));
      });
      xhr.send(data);
    });
  }

  function failedBatch(batch, reason) {
    return {
      files: batch.map(function (file) {
        return { name: file.name, status: "refused", label: "Refused", reason: reason };
      }),
      studies: [],
    };
  }

  function showResults(all) {
    var counts = { stored: 0, already_stored: 0, skipped: 0, refused: 0 };
    var studies = {};
    fileList.textContent = "";
    studyList.textContent = "";
    all.forEach(function (body) {
      body.files.forEach(function (file) {
        var key = file.status.replace("-", "_");
        counts[key] = (counts[key] || 0) + 1;
        var item = document.createElement("li");
        item.className = "upload-" + file.status;
        var strong = document.createElement("strong");
        strong.textContent = file.label + ":";
        item.appendChild(strong);
        item.appendChild(document.createTextNode(" " + file.name + (file.reason ? " — " + file.reason : "")));
        fileList.appendChild(item);
      });
      body.studies.forEach(function (study) {
        var known = studies[study.study_instance_uid];
        if (known) {
          known.images += study.images;
        } else {
          studies[study.study_instance_uid] = study;
        }
      });
    });
    Object.keys(studies).forEach(function (uid) {
      var study = studies[uid];
      var item = document.createElement("li");
      item.className = "study";
      var meta = document.createElement("div");
      meta.className = "study-meta";
      var title = document.createElement("strong");
      title.textContent = study.description || "Imaging study";
      meta.appendChild(title);
      [study.study_date || "Date unknown", study.modalities.join(", ") || "—",
        study.images + " image" + (study.images === 1 ? "" : "s") + " received"].forEach(function (text) {
        var span = document.createElement("span");
        span.textContent = text;
        meta.appendChild(span);
      });
      item.appendChild(meta);
      studyList.appendChild(item);
    });
    summary.textContent = counts.stored + " stored, " + counts.already_stored + " already stored, " +
      counts.skipped + " skipped, " + counts.refused + " refused.";
    results.hidden = false;
    heading.focus();
  }

  form.addEventListener("submit", function (event) {
    var files = selectedFiles();
    event.preventDefault();
    if (!files.length) {
      say("Choose at least one file or folder to upload.");
      return;
    }
    var total = files.reduce(function (sum, file) { return sum + file.size; }, 0);
    var oversized = files.filter(function (file) { return file.size > maxBytes; });
    if (oversized.length) {
      say(oversized[0].name + " is larger than the upload limit.");
      return;
    }
    var batches = batchesOf(files);
    var collected = [];
    var sent = 0;
    submit.disabled = true;
    progressArea.hidden = false;
    progress.value = 0;
    batches.reduce(function (chain, batch, index) {
      return chain.then(function () {
        var before = sent;
        sent += batch.reduce(function (sum, file) { return sum + file.size; }, 0);
        return send(batch, before, total, index, batches.length).then(function (body) {
          collected.push(body);
        });
      });
    }, Promise.resolve()).then(function () {
      progress.value = 100;
      say("Done.");
      submit.disabled = false;
      dropped = [];
      inputs.forEach(function (input) { if (input) { input.value = ""; } });
      showResults(collected);
    });
  });
})();
