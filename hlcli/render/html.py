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
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from ..runs.documents import pair_value
from ..runs.readers import metric_names as run_metric_names, pair_extra_metric_names
from ..metrics.registry import get
from . import html_media as media
from ..text import plural
from .common import num, percent, weights_warnings
from .table import metric_header, shorten_middle
from .gate import allowance, furthest_over, over_by
from .score import ALL_PAIRS, set_table, set_title
from .html_assets import CSS, JS, script_hash
from ..runs.maps import map_path

IMAGE_MODES = ("embed", "link")


@dataclass
class ReportOptions:
    output: Path  # where the report goes (relative links start there)
    maps_dir: Path | None = None
    maps_index: dict[str, Any] | None = None
    top: int = 12
    thumb_size: int = 512
    images: str = "embed"
    image_bases: list[Path] | None = None  # where relative image paths start (None: the current folder)
    not_found: list[str] = field(default_factory=list)  # filled by render_report: pictures not found


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
    anchors = Anchors(pairs, opts.top)
    body = [_header(doc), _explain(doc, anchors), _summary(doc, layer_names), _gate(doc.get("gate")),
            _plots(doc, pairs), _pairs_table(pairs, run_metric_names(doc["settings"]), anchors), _worst(doc, pairs, opts, anchors)]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{e(_csp(opts.images))}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<meta name=\"referrer\" content=\"no-referrer\">\n"
        f"<title>hlcli report: {plural(len(pairs), 'pair')}</title>\n<style>{CSS}</style></head>\n<body>\n"
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
        *([("run in", doc["cwd"])] if isinstance(doc.get("cwd"), str) else []),
    ]
    code = ("command", "run in", "weights sha256")
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
    warning = "".join(f"<p class=\"warning\" id=\"weights-warning{'' if i == 0 else f'-{i + 1}'}\">Warning: {e(note)}</p>"
                      for i, note in enumerate(weights_warnings(s)))
    return (f"<header><h1>hlcli report: {plural(len(doc['pairs']), 'pair')} scored</h1>"
            f"<div id=\"verdict\">{_verdict(doc)}</div>{warning}<dl class=\"meta\">{meta}</dl>{''.join(lists)}</header>")


def _summary(doc: dict[str, Any], layer_names: list[str]) -> str:
    metrics = doc["summary"]["metrics"]
    stats = ("count", "mean", "median", "std", "min", "max", "p95", "p99")
    head = "".join(f"<th>{s}</th>" for s in stats)
    rows = []
    for name in run_metric_names(doc["settings"]):
        m = metrics.get(name)
        if m:
            cells = "".join(f"<td>{e(m[s] if s == 'count' else num(m.get(s)))}</td>" for s in stats)
            note = f" ({m['infinite']} identical: +∞, left out)" if m.get("infinite") else ""
            rows.append(f"<tr><td>{e(metric_header(name))}{e(note)}</td>{cells}</tr>")
    return (f"<section><h2>Summary</h2><table id=\"summary\"><thead><tr><th>metric</th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>{_sets(doc)}</section>")


def _sets(doc: dict[str, Any]) -> str:
    """The set values (FID, KID) as stored in the document's summary (never recomputed): all
    pairs, then each group; each small set's note as a warning under the table."""
    headers, sets = set_table(doc["summary"])
    if not sets:
        return ""
    head = "".join(f"<th>{e(h)}</th>" for h in ["set", *headers])
    rows = "".join(f"<tr><td>{e(ALL_PAIRS) if g is None else '<code>' + e(g) + '</code>'}</td>"
                   + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>" for g, cells, _ in sets)
    notes = "".join(f"<p class=\"warning set-note\">Note ({e(ALL_PAIRS if g is None else g)}): {e(note)}</p>"
                    for g, _, note in sets if note)
    return (f"<h3>Set metrics</h3><p>{e(set_title(doc['settings']))}</p><table id=\"sets\"><thead><tr>{head}</tr>"
            f"</thead><tbody>{rows}</tbody></table>{notes}")


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
        listed = ' (listed under <a href="#what-failed">What failed</a>)' if reg["regressed"] else ""
        out.append(f"<p>Baseline <code>{e(reg['baseline'])}</code>: {plural(reg['pairs_compared'], 'pair')} compared, "
                   f"{len(reg['new'])} new, {len(reg['missing'])} missing, "
                   f"{plural(len(reg['regressed']), 'pair regression')}{listed}.</p>")
        by_metric: dict[str, int] = {}
        for x in reg["regressed"]:
            by_metric[x["metric"]] = by_metric.get(x["metric"], 0) + 1
        rows = "".join(_regression_row(x, by_metric.get(x["metric"], 0)) for x in reg["summary"])
        out.append("<table id=\"regression-summary\"><thead><tr><th>metric</th><th>baseline mean</th><th>this run</th>"
                   f"<th>allowed</th><th>mean</th><th>pairs over their limit</th></tr></thead><tbody>{rows}</tbody></table>")
    out.append("</section>")
    return "".join(out)


def _regression_row(x: dict[str, Any], regressed_pairs: int) -> str:
    """A metric of the baseline comparison: its means, and whether its mean and its pairs are
    within their limits (a metric whose pairs regressed is not shown as passing)."""
    mean = "pass" if x["passed"] else "regressed"
    pairs_cell = (f'<td class="fail"><a href="#what-failed">{plural(regressed_pairs, "pair")}</a></td>'
                  if regressed_pairs else '<td class="pass">none</td>')
    return (f"<tr><td>{e(x['metric'])}</td><td>{e(num(x['baseline']))}</td><td>{e(num(x['observed']))}</td>"
            f"<td>{e(allowance(x))}</td>"
            f"<td class=\"{'pass' if x['passed'] else 'fail'}\">{mean}</td>{pairs_cell}</tr>")


class Anchors:
    """Where a pair can be linked to: its row of the pairs table (``#pair-N``, N its place in
    key order) and, for the worst pairs shown, its gallery item (``#worst-R``, R its rank)."""

    def __init__(self, pairs: list[dict[str, Any]], top: int):
        self.row = {p["key"]: f"pair-{i}" for i, p in enumerate(pairs)}
        ranked = sorted(pairs, key=lambda p: (-p["hybrid"], p["key"]))[:top]
        self.worst = {p["key"]: f"worst-{rank}" for rank, p in enumerate(ranked, 1)}

    def links(self, key: str) -> str:
        out = []
        if key in self.row:
            out.append(f'<a href="#{self.row[key]}">row</a>')
        if key in self.worst:
            out.append(f'<a href="#{self.worst[key]}">pictures</a>')
        return " · ".join(out)


def _explain(doc: dict[str, Any], anchors: Anchors) -> str:
    """The verdict explained, first thing under the header: what failed (each failing gate with
    its observed value, each regressed mean, each regressed pair with its baseline value, new
    value and allowance, furthest over first, and what was not scored), or one line of what
    passed."""
    gate = doc.get("gate") or {}
    checks = gate.get("checks") or []
    reg = gate.get("regressions") or {}
    failed_checks = [g for g in checks if not g["passed"]]
    failed_means = [x for x in reg.get("summary", []) if not x["passed"]]
    regressed = sorted(reg.get("regressed", []), key=lambda x: (-furthest_over(x), x["key"], x["metric"]))
    skipped = doc.get("skipped") or []
    missing = doc.get("missing") or {}
    unmatched = len(missing.get("restored_only") or []) + len(missing.get("gt_only") or [])
    if not (failed_checks or failed_means or regressed or (not doc.get("complete", True))):
        return f'<section id="what-passed"><p class="passed-line">{e(_passed_line(doc, checks, reg))}</p></section>'
    out = ['<section id="what-failed"><h2>What failed</h2>']
    if failed_checks:
        rows = "".join(f"<tr><td><code>{e(g['expression'])}</code></td>"
                       f"<td>{'undefined' if g['observed'] is None else e(num(g['observed']))}</td></tr>"
                       for g in failed_checks)
        out.append(f'<h3>{plural(len(failed_checks), "gate")} failed</h3><table id="failed-gates"><thead><tr>'
                   f"<th>gate</th><th>observed</th></tr></thead><tbody>{rows}</tbody></table>")
    if failed_means:
        rows = "".join(f"<tr><td>{e(x['metric'])}</td><td>{e(num(x['baseline']))}</td><td>{e(num(x['observed']))}</td>"
                       f"<td>{e(allowance(x))}</td><td>{e(over_by(x))}</td><td>{e(percent(x['relative_change']))}</td></tr>"
                       for x in failed_means)
        out.append(f"<h3>Mean {'regression' if len(failed_means) == 1 else 'regressions'} against "
                   f"<code>{e(reg['baseline'])}</code></h3><table id=\"failed-means\"><thead><tr><th>metric</th>"
                   f"<th>baseline mean</th><th>this run</th><th>allowed</th><th>over by</th><th>change</th></tr></thead>"
                   f"<tbody>{rows}</tbody></table>")
    if regressed:
        rows = "".join(
            f"<tr><td><code>{e(x['key'])}</code></td><td>{e(x['metric'])}</td><td>{e(num(x['baseline']))}</td>"
            f"<td>{e(num(x['observed']))}</td><td>{e(allowance(x))}</td>"
            f"<td>{e(over_by(x))}</td><td>{e(percent(x['relative_change']))}</td>"
            f"<td>{anchors.links(x['key'])}</td></tr>" for x in regressed)
        out.append(f"<h3>{plural(len(regressed), 'pair regression')} against <code>{e(reg['baseline'])}</code>, "
                   "furthest over its allowance first</h3><table id=\"regressed\"><thead><tr><th>pair</th><th>metric</th>"
                   "<th>baseline</th><th>this run</th><th>allowed</th><th>over by</th><th>change</th><th>see</th>"
                   f"</tr></thead><tbody>{rows}</tbody></table>")
    if skipped or unmatched:
        parts = [f'<a href="#skipped">{plural(len(skipped), "pair")} skipped</a>'] if skipped else []
        parts += [f"{plural(unmatched, 'file')} without a partner"] if unmatched else []
        out.append(f"<p>Incomplete: {', '.join(parts)} (listed above).</p>")
    out.append("</section>")
    return "".join(out)


def _passed_line(doc: dict[str, Any], checks: list[dict[str, Any]], reg: dict[str, Any]) -> str:
    """``Passed: 2 gates (mean.hybrid < 0.1: 0.0342; p95.l1 < 0.03: 0.021); no pair or mean
    regressed against base.json (30 pairs compared); 30 pairs scored, none skipped.``"""
    parts = []
    if checks:
        shown = "; ".join(f"{g['expression']}: {num(g['observed'])}" for g in checks)
        parts.append(f"{plural(len(checks), 'gate')} ({shown})")
    if reg:
        parts.append(f"no pair or mean regressed against {reg['baseline']} "
                     f"({plural(reg['pairs_compared'], 'pair')} compared)")
    scored = f"{plural(len(doc['pairs']), 'pair')} scored, none skipped"
    return f"Passed: {'; '.join(parts)}; {scored}." if parts else f"No gates: {scored}."


def _plots(doc: dict[str, Any], pairs: list[dict[str, Any]]) -> str:
    if not pairs:
        return ""
    hist = media.histogram_svg([p["hybrid"] for p in pairs], doc["settings"]["lambda"])
    extra = "".join(  # one histogram per extra metric (PSNR's +inf values left out, as in the summary)
        f"<figure id=\"histogram-{e(m)}\">"
        f"{media.metric_histogram_svg([v for p in pairs if (v := pair_value(p, m)) != math.inf], get(m))}</figure>"
        for m in pair_extra_metric_names(doc["settings"]))  # not FID/KID: one value per set, no distribution
    scatter = media.scatter_svg([p["l1"] for p in pairs], [p["perceptual"] for p in pairs])
    keys = json.dumps([p["key"] for p in pairs], ensure_ascii=True).replace("<", "\\u003c").replace(">", "\\u003e")
    keys = keys.replace("&", "\\u0026")
    return (f"<section><h2>Plots</h2><div class=\"plots\"><figure id=\"histogram\">{hist}</figure>"
            f"<figure id=\"scatter\">{scatter}</figure>{extra}</div>"
            f"<script type=\"application/json\" id=\"scatter-keys\">{keys}</script></section>")


def _pairs_table(pairs: list[dict[str, Any]], cols: list[str], anchors: Anchors) -> str:
    head = ('<th data-type="text" tabindex="0">key</th><th data-type="num" tabindex="0">size</th>'
            + "".join(f'<th data-type="num" data-metric="{e(c)}" tabindex="0">{e(metric_header(c))}</th>' for c in cols))
    rows = []
    for p in pairs:
        values = [pair_value(p, c) for c in cols]
        cells = "".join(f'<td data-v="{v!r}">{e(num(v))}</td>' if v != math.inf
                        else '<td data-v="Infinity">∞</td>' for v in values)
        rows.append(f'<tr id="{anchors.row[p["key"]]}"><td data-v="{e(p["key"])}">{e(p["key"])}</td>'
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
        return f"<span class=\"missing\">{e(label)} not available</span>"
    # The view keeps the picture's aspect ratio at any width (the four of a pair share a row).
    return (f"<div class=\"view\" style=\"aspect-ratio:{w} / {h}\">"
            f"<img src=\"{e(src)}\" width=\"{w}\" height=\"{h}\" alt=\"{e(label)}\" draggable=\"false\"></div>")


CAPTION_CHARS = 44  # a caption longer than this is shortened in the middle; the full text on hover


def _panel(kind: str, caption: str, body: str, path: str | None = None) -> str:
    """A picture and its caption; a path in the caption is shortened in the middle (the file
    name stays) with the whole path as the caption's title."""
    text = caption if path is None else f"{caption}: {_shorten_middle(path, CAPTION_CHARS - len(caption) - 2)}"
    title = "" if path is None else f" title=\"{e(path)}\""
    return (f"<figure class=\"panel\" data-kind=\"{kind}\">{body}"
            f"<figcaption{title}>{e(text)}</figcaption></figure>")


def _shorten_middle(text: str, width: int) -> str:
    return shorten_middle(text, max(12, width))


def _worst(doc: dict[str, Any], pairs: list[dict[str, Any]], opts: ReportOptions, anchors: Anchors) -> str:
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
        found = media.find_image(path, opts.image_bases if opts.image_bases is not None else [Path.cwd()])
        if found is None:
            opts.not_found.append(path)
        src = media.link(found, opts.output) if link and found is not None else None
        rgb = None if src or found is None else media.photo_thumb(found, size, alpha)
        panels.append(_panel(kind, caption, _img(rgb, src, caption, size), path))
    index = opts.maps_index
    if index and opts.maps_dir is not None:
        pair_range = (index["pairs"].get(p["key"]) or {}).get("range") or {}
        for kind, caption in (("l1", "L1 map"), ("perceptual", "perceptual map")):
            png = map_path(opts.maps_dir, p["key"], kind, "png")
            src = media.link(png, opts.output) if link and media.is_regular_file(png) else None
            rgb = None if src else media.map_thumb(opts.maps_dir, p["key"], kind, index, size)
            top = (pair_range.get(kind) or [0, 0])[1]
            panels.append(_panel(kind, f"{caption}, 0 to {num(top, '.4g')}", _img(rgb, src, caption, size)))
    layers = ", ".join(f"{k} {num(v, '.4g')}" for k, v in p["layers"].items())
    return (f"<article class=\"worst\" id=\"worst-{rank}\" data-key=\"{e(p['key'])}\"><h3>#{rank} <code>{e(p['key'])}</code></h3>"
            f"<p>hybrid {e(num(p['hybrid']))} · L1 {e(num(p['l1']))} · perceptual {e(num(p['perceptual']))} "
            f"({e(layers)}) · {p['width']}×{p['height']}</p>"
            "<p class=\"controls\"><button data-zoom=\"1.5\">zoom in</button><button data-zoom=\"0.6667\">zoom out"
            "</button><button data-zoom=\"0\">reset</button><button data-flicker=\"1\" aria-pressed=\"false\">"
            "flicker restored / ground truth</button> <span class=\"zoom\">1.0x</span></p>"
            f"<div class=\"panels\">{''.join(panels)}</div></article>")
