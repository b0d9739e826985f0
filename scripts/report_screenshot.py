#!/usr/bin/env python
"""Make docs/report-screenshot.png: `hlcli score samples/restored samples/gt --metrics psnr,ssim_y
--report`, opened
in headless Chromium (Debian's chromium + chromium-driver, driven by selenium), screenshotted
and shrunk to a small PNG.

Uses the real VGG-19 weights when hlcli finds them offline ($HLCLI_WEIGHTS, the torch cache);
otherwise a seeded random checkpoint, and says so (the README's caption must say which).

    python scripts/report_screenshot.py [--out docs/report-screenshot.png]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def weights_file(tmp: Path) -> tuple[str, bool]:
    """(checkpoint path, whether it is the real ImageNet one)."""
    from hlcli.nets import weights
    from hlcli.errors import HlcliError

    try:
        path = weights.resolve(None, offline=True, progress=False)
        return str(path), True
    except HlcliError:
        import torch

        sys.path.insert(0, str(ROOT / "tests"))
        from conftest import make_vgg19_state_dict

        path = tmp / "vgg19-random.pth"
        torch.save(make_vgg19_state_dict(), path)
        return str(path), False


def screenshot(html: Path, out: Path, width: int = 1280, height: int = 1900) -> None:
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    try:
        driver.get(html.as_uri())
        time.sleep(0.5)
        raw = html.with_suffix(".png")
        driver.save_screenshot(str(raw))
    finally:
        driver.quit()
    with Image.open(raw) as img:
        small = img.convert("RGB").resize((width * 3 // 4, height * 3 // 4), Image.Resampling.LANCZOS)
        small.quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "report-screenshot.png"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hlcli-shot-") as tmp:
        weights, real = weights_file(Path(tmp))
        html = Path(tmp) / "report.html"
        subprocess.run([sys.executable, "-m", "hlcli", "score", "samples/restored", "samples/gt", "--weights",
                        weights, "--metrics", "psnr,ssim_y", "-q", "-f", "json", "-o", str(Path(tmp) / "run.json"),
                        "--report", str(html)],
                       cwd=ROOT, check=True)
        screenshot(html, Path(args.out))
    size = Path(args.out).stat().st_size
    print(f"wrote {args.out} ({size // 1024} KB) with {'the real ImageNet' if real else 'RANDOM (seeded)'} "
          "VGG-19 weights")


if __name__ == "__main__":
    main()
