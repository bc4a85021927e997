// The signature pad on the authorization form: draw with a mouse, pen or finger (Pointer Events),
// or adopt the typed name. The drawing goes to the server as a PNG data URL in a hidden field;
// the server checks it is a real, non-empty PNG.
(function () {
  "use strict";
  var canvas = document.getElementById("signature-pad");
  var field = document.getElementById("id_signature");
  if (!canvas || !field || !canvas.getContext) return;
  var clearButton = document.getElementById("signature-clear");
  var adoptButton = document.getElementById("signature-adopt");
  var typed = document.getElementById("id_typed_signature");
  var status = document.getElementById("signature-status");
  var ctx = canvas.getContext("2d");
  var drawing = false;
  var last = null;
  var inked = false;

  function pen() {
    ctx.lineWidth = 3;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#111";
    ctx.fillStyle = "#111";
  }

  function point(event) {
    var box = canvas.getBoundingClientRect();
    return {
      x: ((event.clientX - box.left) * canvas.width) / box.width,
      y: ((event.clientY - box.top) * canvas.height) / box.height,
    };
  }

  function save() {
    field.value = inked ? canvas.toDataURL("image/png") : "";
    if (status) status.textContent = inked ? "Signature captured." : "The signature box is empty.";
  }

  function clear() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    inked = false;
    pen();
  }

  canvas.addEventListener("pointerdown", function (event) {
    event.preventDefault();
    if (canvas.setPointerCapture) canvas.setPointerCapture(event.pointerId);
    drawing = true;
    last = point(event);
    ctx.beginPath();
    ctx.arc(last.x, last.y, ctx.lineWidth / 2, 0, 2 * Math.PI);
    ctx.fill();
    inked = true;
  });

  canvas.addEventListener("pointermove", function (event) {
    if (!drawing) return;
    event.preventDefault();
    var events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    if (!events.length) events = [event];
    events.forEach(function (each) {
      var next = point(each);
      ctx.beginPath();
      ctx.moveTo(last.x, last.y);
      ctx.lineTo(next.x, next.y);
      ctx.stroke();
      last = next;
    });
  });

  function end() {
    if (!drawing) return;
    drawing = false;
    save();
  }
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);

  if (clearButton) {
    clearButton.addEventListener("click", function () {
      clear();
      save();
    });
  }

  if (adoptButton && typed) {
    adoptButton.addEventListener("click", function () {
      var name = typed.value.trim();
      if (!name) {
        if (status) status.textContent = "Type your full name first, then sign with it.";
        typed.focus();
        return;
      }
      clear();
      ctx.font = "italic 56px 'Brush Script MT', 'Segoe Script', cursive, serif";
      ctx.textBaseline = "middle";
      ctx.fillText(name, 24, canvas.height / 2, canvas.width - 48);
      inked = true;
      save();
    });
  }

  pen();
  // After a form error the server sends the signature back: show it rather than ask again.
  if (field.value.indexOf("data:image/png;base64,") === 0) {
    var image = new Image();
    image.onload = function () {
      ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
      inked = true;
      if (status) status.textContent = "Your signature is kept. Clear it to sign again.";
    };
    image.src = field.value;
  } else {
    field.value = "";
  }
})();
