"""A simulated observatory: devices that behave like real ones, for demos, tests and benchmarks.

* :class:`SimTelescope` — slews take time, an altitude limit, sidereal tracking;
* :class:`SimFocuser` — moves take time;
* :class:`SimCamera` — exposures take time and write FITS files of a synthetic star field, blurred by
  the distance of the focuser from the true best focus;
* :class:`SimWeather` — good and bad periods from a script;
* :class:`SimAutoFocus` — finds the best focus from the images alone;
* :class:`NightScript` — runs a short night with all of them and logs a summary.

The physical truth (temperature, true best focus, seeing, the stars) is a :class:`SimWorld`, a plain
configured object that the sim devices share — not a module, so no other module can ask it.
Needs NumPy (``pip install 'pyobs-comm[sim]'``). ``pyobs examples/observatory.yaml`` runs them all.
"""

from .autofocus import SimAutoFocus
from .camera import SimCamera
from .focuser import SimFocuser
from .night import NightScript, NightSummary
from .telescope import AltitudeLimitError, SimTelescope
from .weather import SimWeather
from .world import SimWorld

__all__ = [
    "AltitudeLimitError",
    "NightScript",
    "NightSummary",
    "SimAutoFocus",
    "SimCamera",
    "SimFocuser",
    "SimTelescope",
    "SimWeather",
    "SimWorld",
]
