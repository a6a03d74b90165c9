// Live updates of an operation's page: the steps table and the outcome follow the
// server-sent events of /api/v1/operations/ID/events; when the operation ends the
// page reloads to show its incident report. Without JavaScript the page still shows
// the state as of its loading (reload to see more).
(function () {
  "use strict";
  var root = document.getElementById("operation");
  if (!root || root.getAttribute("data-outcome") !== "running") { return; }
  var id = root.getAttribute("data-operation");
  var source = new EventSource("/api/v1/operations/" + encodeURIComponent(id) + "/events");
  function cell(text) { var td = document.createElement("td"); td.textContent = text; return td; }
  function badge(state) {
    var td = document.createElement("td"); var span = document.createElement("span");
    span.className = "badge " + state; span.textContent = state; td.appendChild(span); return td;
  }
  source.addEventListener("steps", function (e) {
    var data = JSON.parse(e.data);
    var body = document.getElementById("steps-body");
    while (body.firstChild) { body.removeChild(body.firstChild); }
    data.steps.forEach(function (s, i) {
      var tr = document.createElement("tr");
      tr.appendChild(cell(String(i + 1)));
      tr.appendChild(cell(s.name));
      tr.appendChild(cell(s.host));
      tr.appendChild(badge(s.state));
      tr.appendChild(cell(s.duration_ms === null ? "" : s.duration_ms + " ms"));
      tr.appendChild(cell(s.detail || ""));
      body.appendChild(tr);
    });
    var outcome = document.getElementById("outcome");
    outcome.className = "badge " + data.outcome;
    outcome.textContent = data.outcome;
  });
  source.addEventListener("end", function () {
    source.close();
    window.location.reload();
  });
}());
