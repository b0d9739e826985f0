"""``hlcli info``: what this machine offers hlcli (paste it into bug reports)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import debug_option, default_output_format, handle_errors, output_stream, parse_device, OutputPath
from ..engine import sysinfo
from ..render.info import write_info


@click.command("info", short_help="Devices, CPU capability, native precisions, versions, weights.")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]),
              help="Output format. Default: from -o's extension, else table.")
@click.option("-o", "--output", type=OutputPath(example="machine.json"), metavar="FILE", help="Write to FILE (atomically) instead of stdout.")
@click.option("--device", default="auto", show_default=True, callback=parse_device,
              help="The device `score --device` would use, and the one --bench measures.")
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Consider this file first, as `hlcli score --weights` would.")
@click.option("--bench", is_flag=True,
              help="Also measure pairs/s at 256x256 (default layers) for fp32, bf16 and fp16 on the device, "
                   "a few seconds each, with the weights `score` would use (random ones if there are none).")
@debug_option
@handle_errors
def info_cmd(fmt: str | None, output: str | None, device: str, weights_path: Path | None, bench: bool,
             debug: bool) -> None:
    """Show the devices hlcli can use, the CPU's model and capability (AVX2, AVX-512, AMX),
    which precisions each device computes natively (an emulated one is several times slower
    than fp32), threads, torch/CUDA/cuDNN versions, the weights `score` would use and the
    cache paths. Never downloads. Please paste its output into bug reports.

    \b
    Examples:
      hlcli info
      hlcli info --bench
      hlcli info -f json > machine.json
    """
    fmt = fmt or default_output_format(output, ("table", "json"))
    data = sysinfo.gather(device, weights_path)
    if bench:
        data["bench"] = sysinfo.bench(device, weights_path, progress=lambda m: click.echo(m, err=True))
    with output_stream(output) as out:
        write_info(data, fmt, out)
