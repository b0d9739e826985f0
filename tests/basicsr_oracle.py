"""An independent oracle: BasicSR's numpy PSNR/SSIM (``basicsr/metrics/psnr_ssim.py``,
``metric_util.to_y_channel``, ``utils/color_util.bgr2ycbcr``; Apache-2.0, XPixelGroup), restated
line for line with OpenCV and numpy, for the agreement tests. Images are HWC uint8 in BGR order,
as BasicSR reads them with ``cv2.imread``. Not used by hlcli itself."""

from __future__ import annotations

import cv2
import numpy as np


def bgr2ycbcr_y(img: np.ndarray) -> np.ndarray:
    img_type = img.dtype
    img = img.astype(np.float32)  # _convert_input_type_range (float32 input: no change)
    out_img = np.dot(img, [24.966, 128.553, 65.481]) + 16.0
    out_img /= 255.  # _convert_output_type_range to float32
    return out_img.astype(img_type)


def to_y_channel(img: np.ndarray) -> np.ndarray:
    img = img.astype(np.float32) / 255.
    if img.ndim == 3 and img.shape[2] == 3:
        img = bgr2ycbcr_y(img)
        img = img[..., None]
    return img * 255.


def calculate_psnr(img, img2, crop_border, test_y_channel=False):
    if crop_border != 0:
        img = img[crop_border:-crop_border, crop_border:-crop_border, ...]
        img2 = img2[crop_border:-crop_border, crop_border:-crop_border, ...]
    if test_y_channel:
        img = to_y_channel(img)
        img2 = to_y_channel(img2)
    img = img.astype(np.float64)
    img2 = img2.astype(np.float64)
    mse = np.mean((img - img2) ** 2)
    if mse == 0:
        return float("inf")
    return 10. * np.log10(255. * 255. / mse)


def _ssim(img, img2):
    c1 = (0.01 * 255) ** 2
    c2 = (0.03 * 255) ** 2
    kernel = cv2.getGaussianKernel(11, 1.5)
    window = np.outer(kernel, kernel.transpose())
    mu1 = cv2.filter2D(img, -1, window)[5:-5, 5:-5]
    mu2 = cv2.filter2D(img2, -1, window)[5:-5, 5:-5]
    mu1_sq = mu1 ** 2
    mu2_sq = mu2 ** 2
    mu1_mu2 = mu1 * mu2
    sigma1_sq = cv2.filter2D(img ** 2, -1, window)[5:-5, 5:-5] - mu1_sq
    sigma2_sq = cv2.filter2D(img2 ** 2, -1, window)[5:-5, 5:-5] - mu2_sq
    sigma12 = cv2.filter2D(img * img2, -1, window)[5:-5, 5:-5] - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
    return ssim_map.mean()


def calculate_ssim(img, img2, crop_border, test_y_channel=False):
    if crop_border != 0:
        img = img[crop_border:-crop_border, crop_border:-crop_border, ...]
        img2 = img2[crop_border:-crop_border, crop_border:-crop_border, ...]
    if test_y_channel:
        img = to_y_channel(img)
        img2 = to_y_channel(img2)
    img = img.astype(np.float64)
    img2 = img2.astype(np.float64)
    return np.array([_ssim(img[..., i], img2[..., i]) for i in range(img.shape[2])]).mean()
