"""An independent, deliberately plain reference: float64, one pair at a time, torchvision's own
VGG-19 with every ReLU made non-in-place, ImageNet normalisation, PIL decoding. It shares no code
with hlcli."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def load_rgb01(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0


def reference_model(state_dict):
    import torch
    import torchvision

    model = torchvision.models.vgg19(weights=None)
    model.load_state_dict({**model.state_dict(), **state_dict})
    for m in model.features:
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
    return model.features.double().eval()


def reference_scores(model, restored: np.ndarray, gt: np.ndarray, indices: list[int]):
    """(l1, {index: perceptual}) for one pair of HxWx3 float64 arrays in [0, 1]."""
    import torch

    l1 = float(np.mean(np.abs(gt - restored)))
    mean = torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)

    def run(arr):
        x = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0)
        x = (x - mean) / std
        out = {}
        with torch.no_grad():
            for i, m in enumerate(model):
                x = m(x)
                if i in indices:
                    out[i] = x.clone()
                if i >= max(indices):
                    break
        return out

    fr, fg = run(restored), run(gt)
    return l1, {i: float(((fg[i] - fr[i]) ** 2).mean()) for i in indices}
