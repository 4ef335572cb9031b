// sendworker review console: countdowns, keyboard, live count. Every action
// also works without this script (plain links and forms).
(function () {
  "use strict";
  var body = document.body;

  function left(ms) {
    if (ms <= 0) return "due now";
    var s = Math.floor(ms / 1000), m = Math.floor(s / 60), h = Math.floor(m / 60);
    if (s < 60) return s + "s left";
    if (m < 60) return m + "m left";
    if (h < 48) return h + "h " + String(m % 60).padStart(2, "0") + "m left";
    return Math.floor(h / 24) + "d left";
  }
  function tick() {
    document.querySelectorAll("time.countdown").forEach(function (t) {
      var ms = Date.parse(t.getAttribute("datetime")) - Date.now();
      t.textContent = left(ms);
      var row = t.closest("tr");
      if (row) row.classList.toggle("soon", ms < 3600e3);
    });
  }
  setInterval(tick, 1000);

  // Live count in the title and the nav; on the first queue page with
  // nothing selected, the rows are refreshed in place.
  var queueRows = document.getElementById("queue-rows");
  function refreshRows() {
    if (!queueRows || location.search.indexOf("after=") >= 0) return;
    if (document.querySelector("input[name=item]:checked") || document.activeElement.tagName === "INPUT") return;
    var u = new URL(location.href);
    u.searchParams.set("partial", "1");
    fetch(u, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.text() : null; }).then(function (html) {
      if (html === null || document.querySelector("input[name=item]:checked")) return;
      queueRows.innerHTML = html;
      focusRow(Math.min(focused, rows().length - 1));
      tick();
    }).catch(function () {});
  }
  function poll() {
    fetch("/console/live", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) {
        if (!j) return;
        var before = body.dataset.pending;
        body.dataset.pending = j.pending;
        document.title = (j.pending ? "(" + j.pending + ") " : "") + body.dataset.title + " · sendworker";
        ["pending-count", "pending-total"].forEach(function (id) {
          var el = document.getElementById(id);
          if (el) el.textContent = j.pending;
        });
        if (String(j.pending) !== before) refreshRows();
      }).catch(function () {});
  }
  if (document.getElementById("pending-count")) setInterval(poll, 4000);

  // Queue: select all, row click, keyboard.
  var all = document.getElementById("select-all");
  if (all) all.addEventListener("change", function () {
    document.querySelectorAll("input[name=item]").forEach(function (c) { c.checked = all.checked; });
  });
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("tr.row")); }
  var focused = -1;
  function focusRow(i) {
    var rs = rows();
    rs.forEach(function (r) { r.classList.remove("focused"); });
    if (i < 0 || i >= rs.length) { focused = -1; return; }
    focused = i;
    rs[i].classList.add("focused");
    rs[i].scrollIntoView({ block: "nearest" });
  }
  if (queueRows) queueRows.addEventListener("click", function (e) {
    if (e.target.closest("a, input, label")) return;
    var tr = e.target.closest("tr.row");
    if (tr) location.href = tr.dataset.href;
  });

  // The reason field takes focus when the r key is released, so the r
  // itself is never typed into it.
  var focusOnKeyUp = "";
  document.addEventListener("keyup", function () {
    if (!focusOnKeyUp) return;
    var el = document.getElementById(focusOnKeyUp);
    focusOnKeyUp = "";
    if (el) el.focus();
  });
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var tag = document.activeElement && document.activeElement.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") {
      if (e.key === "Escape") document.activeElement.blur();
      return;
    }
    var k = e.key;
    if (queueRows) {
      var rs = rows();
      if (k === "j") { focusRow(Math.min(focused + 1, rs.length - 1)); e.preventDefault(); }
      else if (k === "k") { focusRow(Math.max(focused - 1, 0)); e.preventDefault(); }
      else if (k === "x" && focused >= 0) { var c = rs[focused].querySelector("input[name=item]"); if (c) c.checked = !c.checked; e.preventDefault(); }
      else if ((k === "Enter" || k === "o") && focused >= 0) { location.href = rs[focused].dataset.href; e.preventDefault(); }
      else if (k === "A") { var b = document.getElementById("bulk-approve"); if (b) b.click(); e.preventDefault(); }
      return;
    }
    var approve = document.getElementById("approve");
    if (k === "a" && approve) { approve.click(); e.preventDefault(); }
    else if (k === "r" && document.getElementById("reason")) { e.preventDefault(); focusOnKeyUp = "reason"; }
    else if (k === "n" && document.getElementById("next-send")) { document.getElementById("next-send").click(); e.preventDefault(); }
    else if (k === "p") { history.back(); e.preventDefault(); }
    else if (k === "e" && document.getElementById("edit")) { e.preventDefault(); document.getElementById("edit").open = true; focusOnKeyUp = "revise-text"; }
    else if (k === "u" && document.getElementById("back")) { document.getElementById("back").click(); e.preventDefault(); }
  });
  // The page's handlers are in place (the browser tests wait for this).
  body.dataset.ready = "1";
})();
