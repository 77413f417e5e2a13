"""The simulation world: the physical truth the simulated devices share and the other modules never see.

A :class:`SimWorld` is a deterministic model of the night: the air temperature, the telescope's true best
focus (which drifts with temperature), the seeing and the stars in a field. It is a plain object built
from configuration, not a module, so it is *not* on the network: the autofocus can only learn the best
focus the way a real one does, from the images. Devices that need the truth (camera: how blurred the stars
are; weather: what the thermometer reads; the night script: how good the autofocus was) each get a
``world:`` of the same parameters. Everything is a function of the wall-clock time and the parameters, so
instances built from the same config agree, in one process (a YAML anchor ``&world`` / ``*world``) or
across many (one YAML per module over XMPP or D-Bus).
"""

from __future__ import annotations

import hashlib
import math
import random
import time as _time
from dataclasses import dataclass


@dataclass(frozen=True)
class Star:
    """A star of a simulated field: position on the full sensor [unbinned pixels] and brightness."""

    x: float
    y: float
    flux: float  # photo-electrons per second


class SimWorld:
    """Deterministic truth of a simulated night.

    Args:
        best_focus: true best focus [mm] at ``reference_temperature``.
        focus_temperature_coefficient: change of the best focus [mm per °C] (a steel tube: -0.03 mm/°C).
        reference_temperature: temperature [°C] at which the best focus is ``best_focus``.
        temperature_mean: mean air temperature [°C].
        temperature_amplitude: amplitude [°C] of the slow temperature variation.
        temperature_period: period [s] of the temperature variation (short, so that a short night shows a drift).
        seeing: seeing FWHM [arcsec] in focus.
        pixel_scale: camera pixel scale [arcsec per unbinned pixel].
        defocus_blur: additional star FWHM [unbinned pixels] per mm of defocus.
        stars_per_field: number of stars in a field of ``field_size`` x ``field_size`` pixels.
        field_size: size [pixels] of the square region ``stars_per_field`` refers to.
        seed: seed of the star fields and of the phase of the temperature variation.
    """

    def __init__(
        self,
        best_focus: float = 12.0,
        focus_temperature_coefficient: float = -0.03,
        reference_temperature: float = 10.0,
        temperature_mean: float = 8.0,
        temperature_amplitude: float = 1.5,
        temperature_period: float = 1800.0,
        seeing: float = 1.2,
        pixel_scale: float = 0.5,
        defocus_blur: float = 8.0,
        stars_per_field: int = 40,
        field_size: int = 512,
        seed: int = 1,
    ) -> None:
        if temperature_period <= 0:
            raise ValueError(f"temperature_period must be positive, got {temperature_period}")
        if seeing <= 0 or pixel_scale <= 0:
            raise ValueError(f"seeing and pixel_scale must be positive, got {seeing} and {pixel_scale}")
        if defocus_blur < 0 or stars_per_field < 0 or field_size <= 0:
            raise ValueError("defocus_blur and stars_per_field must not be negative, field_size must be positive")
        self.best_focus_reference = float(best_focus)
        self.focus_temperature_coefficient = float(focus_temperature_coefficient)
        self.reference_temperature = float(reference_temperature)
        self.temperature_mean = float(temperature_mean)
        self.temperature_amplitude = float(temperature_amplitude)
        self.temperature_period = float(temperature_period)
        self.seeing = float(seeing)
        self.pixel_scale = float(pixel_scale)
        self.defocus_blur = float(defocus_blur)
        self.stars_per_field = int(stars_per_field)
        self.field_size = int(field_size)
        self.seed = int(seed)
        self._phase = random.Random(self.seed).uniform(0.0, 2.0 * math.pi)

    def temperature(self, unix: float | None = None) -> float:
        """Air temperature [°C] at ``unix`` time (now if None)."""
        t = _time.time() if unix is None else unix
        return self.temperature_mean + self.temperature_amplitude * math.sin(
            2.0 * math.pi * t / self.temperature_period + self._phase
        )

    def best_focus(self, unix: float | None = None) -> float:
        """The true best focus [mm] at ``unix`` time: it follows the temperature."""
        dt = self.temperature(unix) - self.reference_temperature
        return self.best_focus_reference + self.focus_temperature_coefficient * dt

    def star_fwhm(self, focus: float, unix: float | None = None) -> float:
        """FWHM [unbinned pixels] of a star imaged with the focuser at ``focus`` [mm].

        Seeing and defocus add in quadrature, so FWHM² is a parabola in the focus (a hyperbola in FWHM).
        """
        seeing_px = self.seeing / self.pixel_scale
        defocus = self.defocus_blur * (focus - self.best_focus(unix))
        return math.sqrt(seeing_px**2 + defocus**2)

    def stars(self, ra: float, dec: float, width: int, height: int) -> list[Star]:
        """The stars of the field at ``ra``/``dec`` [deg] on a ``width`` x ``height`` sensor.

        The same pointing (to 0.01°) always gives the same stars.
        """
        key = f"{self.seed}:{round(ra % 360.0, 2)}:{round(dec, 2)}".encode()
        rng = random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))
        count = round(self.stars_per_field * width * height / self.field_size**2)
        out = []
        for _ in range(count):
            # brightness log-uniform over 5 magnitudes
            flux = 1.0e6 * 10 ** (-0.4 * rng.uniform(0.0, 5.0))
            out.append(Star(rng.uniform(0, width - 1), rng.uniform(0, height - 1), flux))
        return out
