// The alarm console follows the live stream: when the active alarms change, the page is
// drawn again (not while a reset reason is being typed).
(function () {
  "use strict";
  var table = document.getElementById("alarms");
  if (!table || !window.EventSource || table.getAttribute("data-live") !== "1") { return; }
  function shown() {
    var ids = [];
    table.querySelectorAll("tr[data-alarm]").forEach(function (tr) {
      if (tr.getAttribute("data-room") === "") { return; }  // not in the rooms' stream
      ids.push(tr.getAttribute("data-alarm") + "=" + tr.getAttribute("data-state"));
    });
    return ids.sort().join("|");
  }
  function typing() {
    var busy = false;
    table.querySelectorAll("input.reason").forEach(function (i) {
      if (i.value !== "" || document.activeElement === i) { busy = true; }
    });
    return busy;
  }
  var es = new EventSource("/api/live/stream");
  es.addEventListener("rooms", function (ev) {
    var ids = [];
    JSON.parse(ev.data).forEach(function (r) {
      r.alarms.forEach(function (a) { ids.push(a.alarm_id + "=" + a.state); });
    });
    if (ids.sort().join("|") !== shown() && !typing()) {
      es.close();
      window.location.reload();
    }
  });
  es.addEventListener("logout", function () { es.close(); window.location = "/login"; });
})();
