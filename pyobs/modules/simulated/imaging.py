"""Synthetic star images and star-width measurement (NumPy)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

try:
    import numpy as np
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("the simulated modules need NumPy: pip install 'pyobs-comm[sim]'") from exc

from .world import Star

#: FWHM = this x Gaussian sigma
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
SATURATION = 65535


@dataclass
class Exposure:
    """What a simulated sensor sees during one exposure."""

    width: int  # output pixels (after binning)
    height: int
    binning: int
    offset_x: int  # window origin on the full sensor [unbinned pixels]
    offset_y: int
    exposure_time: float  # s
    fwhm: float  # star FWHM [unbinned pixels]
    stars: Sequence[Star]
    sky: float = 20.0  # sky background [e-/s per unbinned pixel]
    dark: float = 0.5  # dark current [e-/s per unbinned pixel]
    bias: float = 1000.0  # [ADU]
    read_noise: float = 5.0  # [e-]
    gain: float = 1.0  # [e-/ADU]


def render(exp: Exposure, rng: Any) -> Any:
    """A uint16 image of Gaussian stars on sky, with photon and read noise (``rng``: numpy Generator)."""
    b = exp.binning
    h, w = exp.height, exp.width
    electrons = np.full((h, w), (exp.sky + exp.dark) * exp.exposure_time * b * b, dtype=np.float64)
    sigma = exp.fwhm / FWHM_PER_SIGMA / b  # in output pixels
    radius = max(3, math.ceil(5 * sigma))
    for star in exp.stars:
        # star centre in output pixels
        cx = (star.x - exp.offset_x) / b
        cy = (star.y - exp.offset_y) / b
        x0, x1 = max(0, math.floor(cx) - radius), min(w, math.floor(cx) + radius + 1)
        y0, y1 = max(0, math.floor(cy) - radius), min(h, math.floor(cy) + radius + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        xs = np.arange(x0, x1) - cx
        ys = np.arange(y0, y1) - cy
        # separable Gaussian, normalised to the star's total flux
        gx = np.exp(-0.5 * (xs / sigma) ** 2)
        gy = np.exp(-0.5 * (ys / sigma) ** 2)
        total = star.flux * exp.exposure_time / (2.0 * math.pi * sigma**2)
        electrons[y0:y1, x0:x1] += total * np.outer(gy, gx)
    signal = rng.poisson(electrons).astype(np.float64)
    signal += rng.normal(0.0, exp.read_noise, size=signal.shape)
    adu = exp.bias + signal / exp.gain
    return np.clip(np.rint(adu), 0, SATURATION).astype(np.uint16)


@dataclass
class StarWidth:
    """Result of :func:`measure_fwhm`."""

    fwhm: float  # median star FWHM [pixels of the image]
    stars: int  # number of stars measured
    background: float  # [ADU]
    noise: float  # [ADU]


def _local_maxima(img: Any, threshold: float) -> Any:
    """(y, x) of pixels above ``threshold`` that are the maximum of their 3x3 neighbourhood."""
    padded = np.pad(img, 1, mode="constant", constant_values=-np.inf)
    centre = padded[1:-1, 1:-1]
    is_max = centre > threshold
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                is_max &= centre >= padded[1 + dy : padded.shape[0] - 1 + dy, 1 + dx : padded.shape[1] - 1 + dx]
    return np.argwhere(is_max)


def _moment_sigma(stamp: Any, cy: float, cx: float, max_radius: float) -> float | None:
    """Gaussian sigma from the second moments of a background-subtracted stamp, in an aperture iterated to
    4 sigma (where a Gaussian has 99.97 % of its flux)."""
    yy, xx = np.indices(stamp.shape, dtype=np.float64)
    radius = max_radius
    sigma: float | None = None
    for _ in range(6):
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        weights = np.where(mask, stamp, 0.0)
        total = weights.sum()
        if total <= 0:
            return None
        mx = (weights * xx).sum() / total
        my = (weights * yy).sum() / total
        var = (weights * ((xx - mx) ** 2 + (yy - my) ** 2)).sum() / total / 2.0
        if var <= 0:
            return None
        cx, cy = mx, my
        new = math.sqrt(var)
        if sigma is not None and abs(new - sigma) < 0.01 * sigma:
            sigma = new
            break
        sigma = new
        radius = min(max_radius, max(2.5, 4.0 * sigma))
    return sigma


def measure_fwhm(image: Any, max_stars: int = 25, box: int = 20) -> StarWidth:
    """Median FWHM [pixels] of the brightest isolated, unsaturated stars in ``image``.

    Stars are local maxima 10 sigma above the background (median, noise from the median absolute
    deviation); each width comes from second moments (:func:`_moment_sigma`) in a ``2·box+1`` stamp.
    """
    img = np.asarray(image, dtype=np.float64)
    background = float(np.median(img))
    noise = float(1.4826 * np.median(np.abs(img - background))) or 1.0
    peaks = _local_maxima(img, background + 10.0 * noise)
    if len(peaks) == 0:
        return StarWidth(math.nan, 0, background, noise)
    values = img[peaks[:, 0], peaks[:, 1]]
    order = np.argsort(values)[::-1]
    peaks, values = peaks[order], values[order]
    h, w = img.shape
    sigmas: list[float] = []
    for i, ((py, px), value) in enumerate(zip(peaks, values, strict=True)):
        if value >= SATURATION - 500:
            continue  # saturated: the width would be wrong
        if py < box or px < box or py >= h - box or px >= w - box:
            continue  # stamp would leave the image
        others = np.delete(peaks, i, axis=0)
        if len(others) and np.min(np.hypot(others[:, 0] - py, others[:, 1] - px)) < box:
            # another peak nearby: a blend, or noise on a flat top; skip unless it is much fainter
            near = np.hypot(others[:, 0] - py, others[:, 1] - px) < box
            if np.max(np.delete(values, i)[near]) > 0.2 * value:
                continue
        stamp = img[py - box : py + box + 1, px - box : px + box + 1] - background
        sigma = _moment_sigma(stamp, float(box), float(box), float(box))
        if sigma is not None:
            sigmas.append(sigma)
        if len(sigmas) >= max_stars:
            break
    if not sigmas:
        return StarWidth(math.nan, 0, background, noise)
    return StarWidth(float(np.median(sigmas)) * FWHM_PER_SIGMA, len(sigmas), background, noise)


@dataclass
class FocusFit:
    """Result of :func:`fit_focus`."""

    focus: float
    error: float
    min_fwhm: float


def fit_focus(focus: Sequence[float], fwhm: Sequence[float]) -> FocusFit:
    """Best focus from star widths: fits FWHM² = a·f² + b·f + c (seeing and defocus add in quadrature, so
    FWHM is a hyperbola in f and FWHM² a parabola). Raises ValueError naming the problem."""
    f = np.asarray(focus, dtype=np.float64)
    y = np.asarray(fwhm, dtype=np.float64) ** 2
    ok = np.isfinite(y)
    f, y = f[ok], y[ok]
    if len(f) < 3:
        raise ValueError(f"need at least 3 measured points to fit a focus curve, got {len(f)}")
    centre = float(f.mean())
    x = f - centre  # centred for a well-conditioned fit
    design = np.vstack([x**2, x, np.ones_like(x)]).T
    coeffs, _, _, _ = np.linalg.lstsq(design, y, rcond=None)
    a, b, c = (float(v) for v in coeffs)
    if a <= 0:
        raise ValueError("the star widths do not form a curve with a minimum (focus far off, or no stars?)")
    x0 = -b / (2 * a)
    # error from the covariance of the fit (residual variance x (AᵀA)⁻¹), propagated to x0 = -b/2a
    dof = len(f) - 3
    if dof > 0:
        resid = y - design @ coeffs
        cov = float(resid @ resid) / dof * np.linalg.inv(design.T @ design)
        jac = np.array([b / (2 * a * a), -1.0 / (2 * a), 0.0])
        error = math.sqrt(max(0.0, float(jac @ cov @ jac)))
    else:
        error = math.nan
    min_fwhm = math.sqrt(max(0.0, c - b * b / (4 * a)))
    return FocusFit(x0 + centre, error, min_fwhm)
