"""``hlcli info`` as aligned text (a bug report's paste) or strict JSON."""

from __future__ import annotations

from typing import Any, TextIO

from .common import write_json


def _native(native: dict[str, bool]) -> str:
    return ", ".join(f"{p} {'native' if ok else 'EMULATED'}" for p, ok in native.items())


def info_lines(info: dict[str, Any]) -> list[str]:
    v, cpu, w = info["versions"], info["cpu"], info["weights"]
    rows = [
        ("hlcli", f"{info['hlcli_version']} (Python {v['python']}, {info['platform']})"),
        ("torch", f"{v['torch']}, torchvision {v['torchvision'] or '-'}, CUDA build {v['cuda'] or '-'}, "
                  f"cuDNN {v['cudnn'] or '-'}"),
        ("CPU", f"{cpu['model']}; capability {cpu['capability']}; flags {' '.join(cpu['flags']) or '-'}"),
        ("threads", f"{cpu['threads']} torch threads; {cpu['usable_cpus']} of {cpu['logical_cpus']} CPUs usable"),
    ]
    for d in info["devices"]:
        extra = f", compute capability {d['compute_capability']}, {d['memory_gib']} GiB" if "memory_gib" in d else ""
        rows.append((f"device {d['name']}", f"{d['description']}{extra}; {_native(d['native'])}"))
    rows.append(("selected", f"{info['selected_device']} (what `score --device auto` uses)"))
    use = w["would_use"]
    rows.append(("weights", f"{use['path']} ({use['source']}){'; ' + use['note'] if 'note' in use else ''}"))
    for c in w["candidates"]:
        rows.append(("  looked at", f"{c['source']}: {c['path']} [{'found' if c['exists'] else 'absent'}]"))
    for net, lw in (info.get("lpips_weights") or {}).items():  # the LPIPS backbones, by the same rule
        use = lw["would_use"]
        rows.append((f"{net} weights", f"{use['path']} ({use['source']}){'; ' + use['note'] if 'note' in use else ''}"
                                       f"; for {lw['used_by']}"))
    for name, df in (info.get("metric_files") or {}).items():  # DISTS' alpha/beta, NIQE's model
        use = df["would_use"]
        where = f"{use['path']} ({use['source']})" if use.get("path") else "none"
        rows.append((f"{name} file", f"{where}{'; ' + use['note'] if 'note' in use else ''}; for {df['used_by']}"))
    rows += [("torch cache", w["torch_hub_checkpoints"]), ("hlcli cache", w["hlcli_cache"])]
    b = info.get("bench")
    if b:
        rows.append(("bench", f"{b['size']}x{b['size']} pairs, {','.join(b['layers'])}, on {b['device']}, "
                              f"{b['weights']}"))
        for p, rate in b["pairs_per_s"].items():
            mark = ("  <- fastest" if p == b["fastest"] else "") + \
                ("  (one pair, including warm-up)" if p in b.get("estimated", ()) else "")
            rows.append((f"  {p}", f"{rate:.3g} pairs/s{mark}"))
    width = max(len(k) for k, _ in rows)
    return [f"{k:<{width}}  {val}" for k, val in rows]


def write_info(info: dict[str, Any], fmt: str, out: TextIO) -> None:
    if fmt == "json":
        write_json(info, out)
    else:
        out.write("\n".join(info_lines(info)) + "\n")
