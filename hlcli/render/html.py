"""``hlcli report``: one self-contained HTML file of a stored run (a ``score --format json``
document), optionally with its error maps (``score --save-maps DIR``).

Safe by construction: every text from the run (keys, paths, settings, reasons) goes through
:func:`html.escape`; the scatter's keys travel as JSON with ``<`` escaped; a
Content-Security-Policy forbids every request but ``data:`` images (and, with ``images="link"``,
local files), and allows exactly one script, by its sha256, so an injected handler cannot run.
"""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from ..documents import document_metrics, pair_value
from ..metricdefs import get
from . import html_media as media
from .common import num
from .table import metric_header
from .html_assets import CSS, JS, script_hash

IMAGE_MODES = ("embed", "link")


@dataclass
class ReportOptions:
    output: Path  # where the report goes (relative links start there)
    maps_dir: Path | None = None
    maps_index: dict[str, Any] | None = None
    top: int = 12
    thumb_size: int = 512
    images: str = "embed"


_CONTROL = str.maketrans({c: f"\\x{c:02x}" for c in [*range(0x09), *range(0x0b, 0x20), *range(0x7f, 0xa0)]})


def e(value: Any) -> str:
    """Text for the page: HTML-escaped, control characters (never valid HTML) shown as ``\\xNN``."""
    return escape(str(value).translate(_CONTROL), quote=True)


def _csp(images: str) -> str:
    img = "data: 'self' file:" if images == "link" else "data:"
    return (f"default-src 'none'; img-src {img}; style-src 'unsafe-inline'; script-src {script_hash()}; "
            "base-uri 'none'; form-action 'none'")


def render_report(doc: dict[str, Any], opts: ReportOptions) -> str:
    """The whole page as a string."""
    pairs = sorted(doc["pairs"], key=lambda p: p["key"])
    layer_names = [layer["name"] for layer in doc["settings"]["layers"]]
    body = [_header(doc), _summary(doc, layer_names), _gate(doc.get("gate")), _plots(doc, pairs),
            _pairs_table(pairs, document_metrics(doc)), _worst(doc, pairs, opts)]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{e(_csp(opts.images))}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<meta name=\"referrer\" content=\"no-referrer\">\n"
        f"<title>hlcli report: {len(pairs)} pairs</title>\n<style>{CSS}</style></head>\n<body>\n"
        + "\n".join(part for part in body if part)
        + f"\n<div id=\"tip\"></div>\n<script>{JS}</script>\n</body></html>\n"
    )


def _verdict(doc: dict[str, Any]) -> str:
    complete = doc.get("complete", True)
    gate = doc.get("gate")
    parts = ['<span class="verdict ok">complete</span>' if complete
             else '<span class="verdict bad">incomplete</span>']
    if gate:
        parts.append('<span class="verdict ok">gates passed</span>' if gate.get("passed")
                     else '<span class="verdict bad">gates failed</span>')
    else:
        parts.append("<span>no gates</span>")
    return " ".join(parts)


def _header(doc: dict[str, Any]) -> str:
    s = doc["settings"]
    device = doc.get("device") or {}
    versions = doc.get("versions") or {}
    layers = ", ".join(f"{layer['name']}×{layer['weight']:g}" for layer in s["layers"])
    weights = s.get("weights") or {}
    command = doc.get("command")
    rows = [
        ("λ", num(s["lambda"])), ("layers × weights", layers),
        ("weights", f"{weights.get('path', '')} ({weights.get('source', '')})"),
        ("weights sha256", weights.get("sha256", "")),
        ("versions", f"hlcli {doc.get('hlcli_version', '?')}, torch {versions.get('torch', '?')}, "
                     f"torchvision {versions.get('torchvision', '?')}, python {versions.get('python', '?')}"),
        ("device / precision", f"{device.get('type', '?')}"
                               f"{'' if device.get('index') is None else ':' + str(device.get('index'))}"
                               f" / {s.get('precision', '?')}"),
        ("command", shlex.join(command) if isinstance(command, list) else ""),
    ]
    code = ("command", "weights sha256")
    meta = "".join(f"<dt>{e(k)}</dt><dd>{'<code>' + e(v) + '</code>' if k in code else e(v)}</dd>" for k, v in rows)
    lists = []
    skipped = doc.get("skipped") or []
    if skipped:
        items = "".join(f"<li><code>{e(x['key'])}</code>: {e(x['reason'])}</li>" for x in skipped)
        lists.append(f"<h2>Skipped ({len(skipped)})</h2><ul id=\"skipped\">{items}</ul>")
    missing = doc.get("missing") or {}
    for label, paths in (("Restored files without ground truth", missing.get("restored_only") or []),
                         ("Ground-truth files without a restored file", missing.get("gt_only") or [])):
        if paths:
            items = "".join(f"<li><code>{e(p)}</code></li>" for p in paths)
            lists.append(f"<h2>{e(label)} ({len(paths)})</h2><ul class=\"unmatched\">{items}</ul>")
    return (f"<header><h1>hlcli report: {len(doc['pairs'])} pairs scored</h1>"
            f"<div id=\"verdict\">{_verdict(doc)}</div><dl class=\"meta\">{meta}</dl>{''.join(lists)}</header>")


def _summary(doc: dict[str, Any], layer_names: list[str]) -> str:
    metrics = doc["summary"]["metrics"]
    stats = ("count", "mean", "median", "std", "min", "max", "p95", "p99")
    head = "".join(f"<th>{s}</th>" for s in stats)
    rows = []
    for name in document_metrics(doc):
        m = metrics.get(name)
        if m:
            cells = "".join(f"<td>{e(m[s] if s == 'count' else num(m.get(s)))}</td>" for s in stats)
            note = f" ({m['infinite']} identical: +∞, left out)" if m.get("infinite") else ""
            rows.append(f"<tr><td>{e(metric_header(name))}{e(note)}</td>{cells}</tr>")
    return (f"<section><h2>Summary</h2><table id=\"summary\"><thead><tr><th>metric</th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></section>")


def _gate(gate: dict[str, Any] | None) -> str:
    if not gate:
        return ""
    out = ["<section id=\"gates\"><h2>Gates and baseline</h2>"]
    if gate.get("checks"):
        rows = "".join(
            f"<tr><td><code>{e(g['expression'])}</code></td>"
            f"<td>{'undefined' if g['observed'] is None else e(num(g['observed']))}</td>"
            f"<td class=\"{'pass' if g['passed'] else 'fail'}\">{'pass' if g['passed'] else 'FAIL'}</td></tr>"
            for g in gate["checks"])
        out.append("<table><thead><tr><th>gate</th><th>observed</th><th>result</th></tr></thead>"
                   f"<tbody>{rows}</tbody></table>")
    reg = gate.get("regressions")
    if reg:
        out.append(f"<p>Baseline <code>{e(reg['baseline'])}</code>: {e(reg['pairs_compared'])} pairs compared, "
                   f"{len(reg['new'])} new, {len(reg['missing'])} missing, "
                   f"{len(reg['regressed'])} pair regressions.</p>")
        rows = "".join(
            f"<tr><td>{e(x['metric'])}</td><td>{e(num(x['baseline']))}</td><td>{e(num(x['observed']))}</td>"
            f"<td>{'' if x['allowed'] is None else '+' + e(num(x['allowed']))}</td>"
            f"<td class=\"{'pass' if x['passed'] else 'fail'}\">{'pass' if x['passed'] else 'regressed'}</td></tr>"
            for x in reg["summary"])
        out.append("<table><thead><tr><th>metric</th><th>baseline mean</th><th>this run</th><th>allowed</th>"
                   f"<th>result</th></tr></thead><tbody>{rows}</tbody></table>")
    out.append("</section>")
    return "".join(out)


def _plots(doc: dict[str, Any], pairs: list[dict[str, Any]]) -> str:
    if not pairs:
        return ""
    hist = media.histogram_svg([p["hybrid"] for p in pairs], doc["settings"]["lambda"])
    extra = "".join(  # one histogram per extra metric (PSNR's +inf values left out, as in the summary)
        f"<figure id=\"histogram-{e(m)}\">"
        f"{media.metric_histogram_svg([v for p in pairs if (v := pair_value(p, m)) != math.inf], get(m))}</figure>"
        for m in doc["settings"].get("metrics", []))
    scatter = media.scatter_svg([p["l1"] for p in pairs], [p["perceptual"] for p in pairs])
    keys = json.dumps([p["key"] for p in pairs], ensure_ascii=True).replace("<", "\\u003c").replace(">", "\\u003e")
    keys = keys.replace("&", "\\u0026")
    return (f"<section><h2>Plots</h2><div class=\"plots\"><figure id=\"histogram\">{hist}</figure>"
            f"<figure id=\"scatter\">{scatter}</figure>{extra}</div>"
            f"<script type=\"application/json\" id=\"scatter-keys\">{keys}</script></section>")


def _pairs_table(pairs: list[dict[str, Any]], cols: list[str]) -> str:
    head = ('<th data-type="text" tabindex="0">key</th><th data-type="num" tabindex="0">size</th>'
            + "".join(f'<th data-type="num" data-metric="{e(c)}" tabindex="0">{e(metric_header(c))}</th>' for c in cols))
    rows = []
    for p in pairs:
        values = [pair_value(p, c) for c in cols]
        cells = "".join(f'<td data-v="{v!r}">{e(num(v))}</td>' if v != math.inf
                        else '<td data-v="Infinity">∞</td>' for v in values)
        rows.append(f'<tr><td data-v="{e(p["key"])}">{e(p["key"])}</td>'
                    f'<td data-v="{p["width"] * p["height"]}">{p["width"]}×{p["height"]}</td>{cells}</tr>')
    return (f"<section><h2>Pairs</h2><p><input id=\"filter\" type=\"search\" placeholder=\"filter by key\" "
            f"aria-label=\"filter pairs by key\"> <span id=\"shown\">{len(pairs)} of {len(pairs)} pairs shown</span>"
            " · click a column header to sort (numbers: descending first)</p>"
            f"<div class=\"pairs-wrap\"><table id=\"pairs\"><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div></section>")


def _img(rgb: Any, src_link: str | None, label: str, size: tuple[int, int]) -> str:
    w, h = size
    if src_link is not None:
        src = src_link
    elif rgb is not None:
        src = media.png_data_uri(rgb)
    else:
        return f"<span class=\"missing\" style=\"width:{w}px\">{e(label)} not available</span>"
    return (f"<div class=\"view\" style=\"width:{w}px;height:{h}px\">"
            f"<img src=\"{e(src)}\" width=\"{w}\" height=\"{h}\" alt=\"{e(label)}\" draggable=\"false\"></div>")


def _panel(kind: str, caption: str, body: str) -> str:
    return f"<figure class=\"panel\" data-kind=\"{kind}\">{body}<figcaption>{e(caption)}</figcaption></figure>"


def _worst(doc: dict[str, Any], pairs: list[dict[str, Any]], opts: ReportOptions) -> str:
    ranked = sorted(pairs, key=lambda p: (-p["hybrid"], p["key"]))[: opts.top]
    if not ranked:
        return ""
    alpha = doc["settings"].get("alpha", "ignore")
    index = opts.maps_index
    note = ("" if index else "<p>No error maps: run <code>hlcli score … --save-maps DIR</code> and pass "
            "<code>--maps DIR</code> (or use <code>hlcli score … --report FILE</code>).</p>")
    legend = ""
    if index:
        legend = (f"<p>Maps: colour = {e(index.get('colormap', 'viridis'))}(value / top), "
                  f"<img class=\"colorbar\" src=\"{media.colorbar_uri()}\" alt=\"colour bar\"> from 0 (left) to top "
                  f"(right), top = the {e(index.get('percentile'))}th percentile of the "
                  f"{'run' if index.get('scale') == 'run' else 'pair'} (values above are clipped); layer maps "
                  f"upsampled {e(index.get('upsampling', ''))}.</p>")
    items = [_worst_item(rank, p, alpha, opts) for rank, p in enumerate(ranked, 1)]
    return (f"<section id=\"worst\"><h2>Worst {len(ranked)} pairs by hybrid</h2>{note}{legend}"
            "<p>Wheel or buttons: zoom all four pictures together; drag: pan; double-click: reset; "
            "flicker: swap restored and ground truth.</p>" + "".join(items) + "</section>")


def _worst_item(rank: int, p: dict[str, Any], alpha: str, opts: ReportOptions) -> str:
    size = media.thumb_size(p["width"], p["height"], opts.thumb_size)
    link = opts.images == "link"
    panels = []
    for kind, caption, path in (("restored", "restored", p["restored"]), ("gt", "ground truth", p["gt"])):
        src = media.link(path, opts.output) if link and media.is_regular_file(path) else None
        rgb = None if src else media.photo_thumb(path, size, alpha)
        panels.append(_panel(kind, f"{caption}: {path}", _img(rgb, src, caption, size)))
    index = opts.maps_index
    if index and opts.maps_dir is not None:
        from ..maps import map_path

        pair_range = (index["pairs"].get(p["key"]) or {}).get("range") or {}
        for kind, caption in (("l1", "L1 map"), ("perceptual", "perceptual map")):
            png = map_path(opts.maps_dir, p["key"], kind, "png")
            src = media.link(png, opts.output) if link and media.is_regular_file(png) else None
            rgb = None if src else media.map_thumb(opts.maps_dir, p["key"], kind, index, size)
            top = (pair_range.get(kind) or [0, 0])[1]
            panels.append(_panel(kind, f"{caption}, 0 to {num(top, '.4g')}", _img(rgb, src, caption, size)))
    layers = ", ".join(f"{k} {num(v, '.4g')}" for k, v in p["layers"].items())
    return (f"<article class=\"worst\" data-key=\"{e(p['key'])}\"><h3>#{rank} <code>{e(p['key'])}</code></h3>"
            f"<p>hybrid {e(num(p['hybrid']))} · L1 {e(num(p['l1']))} · perceptual {e(num(p['perceptual']))} "
            f"({e(layers)}) · {p['width']}×{p['height']}</p>"
            "<p class=\"controls\"><button data-zoom=\"1.5\">zoom in</button><button data-zoom=\"0.6667\">zoom out"
            "</button><button data-zoom=\"0\">reset</button><button data-flicker=\"1\" aria-pressed=\"false\">"
            "flicker restored / ground truth</button> <span class=\"zoom\">1.0x</span></p>"
            f"<div class=\"panels\">{''.join(panels)}</div></article>")
