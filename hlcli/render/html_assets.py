"""The HTML report's inline style sheet and script (small vanilla JavaScript, no library): the
sortable and filterable pairs table, the scatter plot's hover keys, and synchronised zoom and
pan of the worst pairs' four pictures. The script's sha256 goes into the page's
Content-Security-Policy, so no other script (an injected one included) can run."""

from __future__ import annotations

import base64
import hashlib

CSS = """
:root { color-scheme: light; --fg: #1d2330; --muted: #5b6475; --line: #d9dde5; --bad: #b3261e; --good: #1e7b34; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); margin: 0; background: #f7f8fa; }
/* One content width for the whole page: the window's, up to 1800 px; the header's white band
   runs the full width with its content aligned to the sections below. */
header, section { max-width: 1800px; margin: 0 auto; padding: 12px 24px; }
header { background: #fff; border-bottom: 1px solid var(--line); max-width: none;
         padding-left: max(24px, calc((100% - 1800px) / 2 + 24px)); padding-right: max(24px, calc((100% - 1800px) / 2 + 24px)); }
h1 { font-size: 22px; margin: 4px 0 8px; } h2 { font-size: 18px; margin: 18px 0 8px; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 12px; font-weight: 600; color: #fff; }
.verdict.ok { background: var(--good); } .verdict.bad { background: var(--bad); }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 8px 0; }
dl.meta dt { color: var(--muted); } dl.meta dd { margin: 0; overflow-wrap: anywhere; }
code { font: 12px ui-monospace, Menlo, Consolas, monospace; background: #eef0f4; padding: 1px 4px; border-radius: 3px; }
table { border-collapse: collapse; background: #fff; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; white-space: normal; overflow-wrap: anywhere; }
#pairs th { cursor: pointer; user-select: none; background: #eef0f4; position: sticky; top: 0; }
#pairs th[aria-sort=descending]::after { content: " \\25BC"; } #pairs th[aria-sort=ascending]::after { content: " \\25B2"; }
.pairs-wrap { max-height: 560px; overflow: auto; border: 1px solid var(--line); display: inline-block; max-width: 100%; }
.fail { color: var(--bad); font-weight: 600; } .pass { color: var(--good); font-weight: 600; }
.plots { display: flex; flex-wrap: wrap; gap: 16px; } .plots figure { margin: 0; background: #fff; border: 1px solid var(--line); padding: 6px; }
.plots svg { max-width: 100%; height: auto; display: block; }
#tip { position: fixed; pointer-events: none; background: #1d2330; color: #fff; padding: 2px 6px; border-radius: 3px; font-size: 12px; display: none; }
.worst { background: #fff; border: 1px solid var(--line); margin: 0 0 18px; padding: 8px 12px; }
.worst h3 { margin: 2px 0 6px; font-size: 15px; overflow-wrap: anywhere; }
/* The four pictures of a pair (restored, ground truth, L1 map, perceptual map) in one row from
   1000 px wide, two by two below; each picture scales to its column, keeping its aspect ratio. */
.panels { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 8px; }
@media (min-width: 1000px) { .panels { grid-template-columns: repeat(4, minmax(0, 1fr)); } }
.panel { margin: 0; min-width: 0; }
.panel figcaption { font-size: 12px; color: var(--muted); white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.view { overflow: hidden; border: 1px solid var(--line); background: #222; cursor: grab; position: relative; width: 100%; }
.view img { display: block; transform-origin: 0 0; image-rendering: pixelated; width: 100%; height: 100%; }
.warning { background: #fff4ce; border: 1px solid #e0b400; padding: 6px 10px; border-radius: 4px; font-weight: 600; }
#what-failed { border-left: 4px solid var(--bad); background: #fff; margin-top: 12px; }
#what-failed h2 { color: var(--bad); } #what-failed h3 { font-size: 15px; margin: 12px 0 6px; }
.passed-line { color: var(--good); font-weight: 600; margin: 0; }
.missing { color: var(--muted); padding: 8px; display: block; }
.controls button { font: inherit; margin-right: 4px; }
.colorbar { vertical-align: middle; height: 12px; width: 256px; border: 1px solid var(--line); }
input#filter { font: inherit; padding: 3px 6px; width: 280px; }
"""

JS = r"""
(function () {
  "use strict";
  var table = document.getElementById("pairs");
  if (table) {
    var tbody = table.tBodies[0];
    var heads = table.tHead.rows[0].cells;
    var shown = document.getElementById("shown");
    var sortRows = function (th) {
      var col = th.cellIndex, numeric = th.getAttribute("data-type") === "num";
      var dir = th.getAttribute("aria-sort") === "descending" ? 1 : (th.getAttribute("aria-sort") === "ascending" ? -1 : (numeric ? -1 : 1));
      for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute("aria-sort"); }
      th.setAttribute("aria-sort", dir < 0 ? "descending" : "ascending");
      var rows = Array.prototype.slice.call(tbody.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute("data-v"), y = b.cells[col].getAttribute("data-v");
        var c = numeric ? (parseFloat(x) - parseFloat(y)) : (x < y ? -1 : (x > y ? 1 : 0));
        return dir * c;
      });
      rows.forEach(function (r) { tbody.appendChild(r); });
    };
    for (var i = 0; i < heads.length; i++) {
      heads[i].addEventListener("click", function (e) { sortRows(e.currentTarget); });
      heads[i].addEventListener("keydown", function (e) { if (e.key === "Enter") { sortRows(e.currentTarget); } });
    }
    var filter = document.getElementById("filter");
    filter.addEventListener("input", function () {
      var q = filter.value.toLowerCase(), n = 0;
      Array.prototype.forEach.call(tbody.rows, function (r) {
        var hit = r.cells[0].getAttribute("data-v").toLowerCase().indexOf(q) !== -1;
        r.hidden = !hit; if (hit) { n++; }
      });
      shown.textContent = n + " of " + tbody.rows.length + " pairs shown";
    });
  }
  var keysNode = document.getElementById("scatter-keys");
  var tip = document.getElementById("tip");
  if (keysNode) {
    var keys = JSON.parse(keysNode.textContent);
    var marks = document.querySelectorAll("#hl-scatter use");
    if (marks.length === keys.length) {
      Array.prototype.forEach.call(marks, function (m, i) {
        var t = document.createElementNS("http://www.w3.org/2000/svg", "title");
        t.textContent = keys[i]; m.appendChild(t);
        m.setAttribute("data-key", keys[i]);
        m.addEventListener("mouseenter", function (e) { tip.textContent = keys[i]; tip.style.display = "block"; });
        m.addEventListener("mousemove", function (e) { tip.style.left = (e.clientX + 12) + "px"; tip.style.top = (e.clientY + 12) + "px"; });
        m.addEventListener("mouseleave", function () { tip.style.display = "none"; });
      });
    }
  }
  Array.prototype.forEach.call(document.querySelectorAll(".worst"), function (box) {
    var views = box.querySelectorAll(".view"), imgs = box.querySelectorAll(".view img");
    var s = { z: 1, x: 0, y: 0 }, drag = null;
    var apply = function () {
      var v = views[0]; if (!v) { return; }
      var w = v.clientWidth, h = v.clientHeight;
      s.z = Math.min(32, Math.max(1, s.z));
      s.x = Math.min(0, Math.max(w - w * s.z, s.x)); s.y = Math.min(0, Math.max(h - h * s.z, s.y));
      Array.prototype.forEach.call(imgs, function (im) { im.style.transform = "translate(" + s.x + "px," + s.y + "px) scale(" + s.z + ")"; });
      var label = box.querySelector(".zoom"); if (label) { label.textContent = s.z.toFixed(1) + "x"; }
    };
    var zoomAt = function (f, px, py) { s.x = px - (px - s.x) * f; s.y = py - (py - s.y) * f; s.z *= f; apply(); };
    Array.prototype.forEach.call(views, function (v) {
      v.addEventListener("wheel", function (e) {
        e.preventDefault(); var r = v.getBoundingClientRect();
        zoomAt(e.deltaY < 0 ? 1.25 : 0.8, e.clientX - r.left, e.clientY - r.top);
      }, { passive: false });
      v.addEventListener("mousedown", function (e) { drag = { x: e.clientX - s.x, y: e.clientY - s.y }; e.preventDefault(); });
      v.addEventListener("dblclick", function () { s = { z: 1, x: 0, y: 0 }; apply(); });
    });
    window.addEventListener("mousemove", function (e) { if (drag) { s.x = e.clientX - drag.x; s.y = e.clientY - drag.y; apply(); } });
    window.addEventListener("mouseup", function () { drag = null; });
    Array.prototype.forEach.call(box.querySelectorAll("button[data-zoom]"), function (b) {
      b.addEventListener("click", function () {
        var f = parseFloat(b.getAttribute("data-zoom")), v = views[0];
        if (f === 0) { s = { z: 1, x: 0, y: 0 }; apply(); } else if (v) { zoomAt(f, v.clientWidth / 2, v.clientHeight / 2); }
      });
    });
    var flick = box.querySelector("button[data-flicker]");
    if (flick) {
      flick.addEventListener("click", function () {
        var a = box.querySelector(".panel[data-kind=restored] img"), b = box.querySelector(".panel[data-kind=gt] img");
        if (!a || !b) { return; }
        var t = a.src; a.src = b.src; b.src = t;
        var ca = a.closest(".panel").querySelector("figcaption"), cb = b.closest(".panel").querySelector("figcaption");
        t = ca.textContent; ca.textContent = cb.textContent; cb.textContent = t;
        var flipped = flick.getAttribute("aria-pressed") === "true";
        flick.setAttribute("aria-pressed", flipped ? "false" : "true");
      });
    }
  });
})();
"""


def script_hash(script: str = JS) -> str:
    """The CSP source that allows exactly this inline script."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"
