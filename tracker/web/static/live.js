// The live room view: the server pushes the rooms (server-sent events) at every change.
(function () {
  "use strict";
  var box = document.getElementById("rooms");
  if (!box || !window.EventSource) { return; }
  var L = JSON.parse(box.getAttribute("data-labels"));
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) { e.textContent = text; }
    if (cls) { e.className = cls; }
    return e;
  }
  function draw(rooms) {
    box.textContent = "";
    rooms.forEach(function (r) {
      var s = el("section", undefined, "room");
      s.setAttribute("data-room", r.room);
      var h = el("h2", r.room + " ");
      h.appendChild(el("small", r.controller + ": " + (r.status || "?") + (r.silent ? " \u26a0" : "")));
      s.appendChild(h);
      s.appendChild(el("p", L.armed + ": " + r.armed + " \u00b7 " + L.updated + ": " + (r.state_ts || L.none)));
      ["door", "windows", "cabinets", "locks", "other"].forEach(function (g) {
        var p = el("p");
        p.appendChild(el("b", L[g]));
        p.appendChild(document.createTextNode(": "));
        Object.keys(r.points[g]).forEach(function (k) {
          var v = r.points[g][k];
          p.appendChild(el("span", k + "=" + v, "pt " + v));
          p.appendChild(document.createTextNode(" "));
        });
        s.appendChild(p);
      });
      var ul = el("ul", undefined, "alarms");
      if (r.alarms.length === 0) { ul.appendChild(el("li", L.noalarms)); }
      r.alarms.forEach(function (a) {
        ul.appendChild(el("li", a.cause + " " + (a.point || "") + " " + a.raised + " (" + a.state + ")", "alarm " + a.state));
      });
      s.appendChild(ul);
      box.appendChild(s);
    });
    box.setAttribute("data-updated", String(Date.now()));
  }
  var es = new EventSource("/api/live/stream");
  es.addEventListener("rooms", function (ev) { draw(JSON.parse(ev.data)); });
  es.addEventListener("logout", function () { es.close(); window.location = "/login"; });
})();
