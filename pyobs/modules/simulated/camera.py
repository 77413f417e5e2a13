"""A simulated camera: exposures take their time and produce FITS files of a synthetic star field."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pyobs.events import ExposureStatusChangedEvent, NewImageEvent
from pyobs.interfaces import (
    Binning,
    BinningCapabilities,
    BinningState,
    ExposureState,
    ExposureTimeState,
    FocuserState,
    IAbortable,
    IBinning,
    ICamera,
    IExposure,
    IExposureTime,
    IFitsHeaderBefore,
    IFocuser,
    IImageType,
    ImageTypeState,
    IPointingRaDec,
    IWindow,
    RaDecState,
    WindowCapabilities,
    WindowState,
)
from pyobs.modules import Module, timeout
from pyobs.utils.enums import ExposureStatus, ImageType
from pyobs.utils.exceptions import AbortedError, ConfigError, DeviceBusyError, GrabImageError, InvalidArgumentError
from pyobs.utils.time import Time

from .common import caller
from .fits import HeaderValue, write_fits
from .imaging import Exposure, render
from .world import SimWorld

log = logging.getLogger(__name__)


class SimCamera(Module, ICamera, IExposure, IExposureTime, IImageType, IBinning, IWindow, IAbortable):
    """A CCD camera that images the simulated sky.

    ``grab_data()`` exposes for the exposure time (``@timeout``: callers' deadlines grow with it), reads
    out, and writes a FITS file (uint16) to ``image_dir``. Stars come from the :class:`SimWorld` field at
    the telescope's RA/Dec (read from the telescope's published state); their width is the world's seeing
    plus the blur of the focuser's distance from the true best focus (position read from the focuser's
    published :class:`FocuserState`). FITS cards of the modules in ``fits_headers`` (IFitsHeaderBefore)
    are added. ``abort()`` ends a running exposure: the waiting ``grab_data()`` raises AbortedError.

    Args:
        image_dir: where images go (default: ``pyobs-images`` in the system's temp directory).
        focuser, telescope: module names to read focus and pointing from (None: in focus / fixed field).
        fits_headers: modules to ask for FITS cards (default: the telescope).
        world: the simulation world (must be the same as the other sim modules').
        width, height: sensor size [pixels].
        exposure_time: initial exposure time [s].
        readout_time: readout time [s] of the full unbinned frame.
        seeing_jitter: relative random variation of the seeing from image to image.
        seed: seed of the noise (None: random).
        progress_interval: how often [s] the exposure progress is published.
    """

    BINNINGS = (1, 2, 3, 4)

    def __init__(
        self,
        image_dir: str | None = None,
        focuser: str | None = "focuser",
        telescope: str | None = "telescope",
        fits_headers: list[str] | None = None,
        world: SimWorld | None = None,
        width: int = 512,
        height: int = 512,
        exposure_time: float = 1.0,
        readout_time: float = 0.1,
        seeing_jitter: float = 0.03,
        seed: int | None = None,
        progress_interval: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if width <= 0 or height <= 0:
            raise ConfigError("width", f"sensor size must be positive, got {width}x{height}")
        if exposure_time < 0 or readout_time < 0 or seeing_jitter < 0 or progress_interval <= 0:
            raise ConfigError("exposure_time", "times and seeing_jitter must not be negative")
        self.image_dir = Path(image_dir) if image_dir else Path(tempfile.gettempdir()) / "pyobs-images"
        self.focuser = focuser
        self.telescope = telescope
        self.fits_headers = fits_headers if fits_headers is not None else ([telescope] if telescope else [])
        self.world = world or SimWorld()
        self.width, self.height = int(width), int(height)
        self.readout_time = float(readout_time)
        self.seeing_jitter = float(seeing_jitter)
        self.progress_interval = float(progress_interval)
        self._rng = np.random.default_rng(seed)
        self._exposure_time = float(exposure_time)
        self._image_type = ImageType.OBJECT
        self._binning = 1
        self._window = (0, 0, self.width, self.height)
        self._status = ExposureStatus.IDLE
        self._exposing = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._abort = asyncio.Event()
        self._abort_reason = ""
        self._counter = itertools.count(1)
        self._warned: set[str] = set()
        self.comm.set_capabilities(IBinning, BinningCapabilities([Binning(b, b) for b in self.BINNINGS]))
        self.comm.set_capabilities(IWindow, WindowCapabilities(0, 0, self.width, self.height))

    async def open(self) -> None:
        await super().open()
        try:
            self.image_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError("image_dir", f"cannot create {self.image_dir}: {exc.strerror or exc}") from None
        await self.comm.register_event(ExposureStatusChangedEvent)
        await self.comm.register_event(NewImageEvent)
        await self.comm.set_state(IExposure, ExposureState(self._status, 0.0, 0.0))
        await self.comm.set_state(IExposureTime, ExposureTimeState(self._exposure_time))
        await self.comm.set_state(IImageType, ImageTypeState(self._image_type))
        await self.comm.set_state(IBinning, BinningState(self._binning, self._binning))
        await self.comm.set_state(IWindow, WindowState(*self._window))
        log.info("%s: %dx%d camera, images go to %s", self.name, self.width, self.height, self.image_dir)

    # ------------------------------------------------------------------ settings

    async def set_exposure_time(self, exposure_time: float, **kwargs: Any) -> None:
        """Set the exposure time [s]."""
        if not 0.0 <= exposure_time <= 3600.0:
            raise InvalidArgumentError(f"exposure time must be within 0..3600 s, got {exposure_time}")
        log.info("%s: set_exposure_time(%g) called by %s", self.name, exposure_time, caller(kwargs))
        self._exposure_time = float(exposure_time)
        await self.comm.set_state(IExposureTime, ExposureTimeState(self._exposure_time))

    async def set_image_type(self, image_type: ImageType, **kwargs: Any) -> None:
        """Set the image type (bias and dark keep the shutter closed)."""
        log.info("%s: set_image_type(%s) called by %s", self.name, image_type, caller(kwargs))
        self._image_type = ImageType(image_type)
        await self.comm.set_state(IImageType, ImageTypeState(self._image_type))

    async def set_binning(self, x: int, y: int, **kwargs: Any) -> None:
        """Set the binning (square: 1x1 to 4x4)."""
        if x != y or x not in self.BINNINGS:
            raise InvalidArgumentError(f"binning {x}x{y} not supported (supported: 1x1, 2x2, 3x3, 4x4)")
        log.info("%s: set_binning(%d, %d) called by %s", self.name, x, y, caller(kwargs))
        self._binning = x
        await self.comm.set_state(IBinning, BinningState(x, y))

    async def set_window(self, left: int, top: int, width: int, height: int, **kwargs: Any) -> None:
        """Set the readout window [unbinned pixels] on the sensor."""
        if left < 0 or top < 0 or width <= 0 or height <= 0 or left + width > self.width or top + height > self.height:
            raise InvalidArgumentError(
                f"window {left},{top} {width}x{height} does not fit the {self.width}x{self.height} sensor"
            )
        log.info("%s: set_window(%d, %d, %d, %d) called by %s", self.name, left, top, width, height, caller(kwargs))
        self._window = (left, top, width, height)
        await self.comm.set_state(IWindow, WindowState(left, top, width, height))

    # ------------------------------------------------------------------ exposure

    def exposure_duration(self) -> float:
        """How long [s] a grab_data() with the current settings takes, readout included."""
        exptime = 0.0 if self._image_type == ImageType.BIAS else self._exposure_time
        _, _, w, h = self._window
        return exptime + self.readout_time * (w * h) / (self.width * self.height) / self._binning**2

    async def _set_status(self, status: ExposureStatus, progress: float = 0.0, left: float = 0.0) -> None:
        if status != self._status:
            last, self._status = self._status, status
            await self.comm.send_event(ExposureStatusChangedEvent(current=status, last=last))
        await self.comm.set_state(IExposure, ExposureState(status, progress, left))

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s: %s", self.name, message)

    async def _focus(self) -> float | None:
        """The focuser's effective position [mm] from its published state (None if unknown)."""
        if not self.focuser:
            return None
        try:
            state: FocuserState | None = await self.comm.get_state(self.focuser, IFocuser)
        except Exception as exc:
            self._warn_once("focuser", f"cannot read the focus from '{self.focuser}' ({exc}); imaging in focus")
            return None
        return None if state is None else state.focus + state.focus_offset

    async def _pointing(self) -> tuple[float, float]:
        if self.telescope:
            try:
                state: RaDecState | None = await self.comm.get_state(self.telescope, IPointingRaDec)
                if state is not None:
                    return state.ra, state.dec
            except Exception as exc:
                self._warn_once("telescope", f"cannot read the pointing of '{self.telescope}' ({exc})")
        return 0.0, 0.0

    async def _fits_cards(self) -> dict[str, tuple[HeaderValue, str]]:
        cards: dict[str, tuple[HeaderValue, str]] = {}
        for name in self.fits_headers:
            try:
                proxy = await self.proxy(name, IFitsHeaderBefore)
                async with asyncio.timeout(5.0):
                    entries = await proxy.get_fits_header_before()
            except Exception as exc:
                log.warning("%s: no FITS header from %s: %s", self.name, name, exc)
                continue
            for key, entry in entries.items():
                cards[key] = (entry.value, entry.comment)
        return cards

    async def _wait(
        self, seconds: float, status: ExposureStatus, what: str, before: float = 0.0, total: float = 0.0
    ) -> None:
        """Wait ``seconds`` publishing progress, or raise AbortedError on abort(). ``before`` of
        ``total`` seconds of the whole grab_data() were done before (for the caller's progress)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            progress = 100.0 * (1.0 - left / seconds) if seconds > 0 else 100.0
            if total > 0:
                self.report_progress(min(1.0, (before + seconds - left) / total), f"{what}, {left:.1f} s left")
            await self._set_status(status, progress, left)
            try:
                await asyncio.wait_for(self._abort.wait(), timeout=min(left, self.progress_interval))
            except TimeoutError:
                continue
            done = seconds - max(0.0, end - loop.time())
            raise AbortedError(
                f"{self.name}: {what} aborted after {done:.2f} of {seconds:.2f} s by {self._abort_reason}"
            )

    @timeout(lambda self, **kw: self.exposure_duration() + 10.0)
    async def grab_data(self, broadcast: bool = True, **kwargs: Any) -> str:
        """Expose, read out, write a FITS file; returns its path. AbortedError if aborted."""
        sender = caller(kwargs)
        if self._exposing:
            raise DeviceBusyError(f"{self.name} is busy with an exposure (grab_data from {sender} refused)")
        self._exposing = True
        self._idle.clear()
        self._abort = asyncio.Event()
        image_type = self._image_type
        exptime = 0.0 if image_type == ImageType.BIAS else self._exposure_time
        binning, window = self._binning, self._window
        readout = self.exposure_duration() - exptime
        log.info("%s: grab_data() called by %s: %.2f s %s exposure", self.name, sender, exptime, image_type)
        path: Path | None = None
        writing: asyncio.Future[None] | None = None
        try:
            cards = await self._fits_cards()
            focus = await self._focus()
            ra, dec = await self._pointing()
            date_obs = Time.now()
            start = time.time()
            await self._wait(exptime, ExposureStatus.EXPOSING, "exposure", 0.0, exptime + readout)
            # the stars are as sharp as the focus was during the exposure: the mean of start and end
            focus_end = await self._focus()
            await self._wait(readout, ExposureStatus.READOUT, "readout", exptime, exptime + readout)
            mid = start + exptime / 2
            if focus is None or focus_end is None:
                blur_focus = focus if focus is not None else self.world.best_focus(mid)
            else:
                blur_focus = (focus + focus_end) / 2
            fwhm = self.world.star_fwhm(blur_focus, mid)
            fwhm *= float(1.0 + self.seeing_jitter * self._rng.standard_normal())
            dark = image_type in (ImageType.BIAS, ImageType.DARK)
            left, top, width, height = window
            exposure = Exposure(
                width=width // binning,
                height=height // binning,
                binning=binning,
                offset_x=left,
                offset_y=top,
                exposure_time=exptime,
                fwhm=fwhm,
                stars=[] if dark else self.world.stars(ra, dec, self.width, self.height),
                sky=0.0 if dark else 20.0,
            )
            data = await asyncio.to_thread(render, exposure, self._rng)
            header: dict[str, tuple[HeaderValue, str]] = {
                "DATE-OBS": (date_obs.isot, "start of exposure (UTC)"),
                "EXPTIME": (exptime, "exposure time [s]"),
                "IMAGETYP": (str(image_type), "image type"),
                "INSTRUME": (self.name, "camera"),
                "XBINNING": (binning, "binning factor in x"),
                "YBINNING": (binning, "binning factor in y"),
                "XORGSUBF": (left, "window origin in x [unbinned pixels]"),
                "YORGSUBF": (top, "window origin in y [unbinned pixels]"),
                "GAIN": (1.0, "gain [e-/ADU]"),
                "RDNOISE": (5.0, "read noise [e-]"),
                **cards,
            }
            if focus is not None:
                header["FOCUS"] = (round(focus, 5), f"focus of {self.focuser} [mm]")
            stamp = date_obs.strftime("%Y%m%d-%H%M%S")
            path = self.image_dir / f"{self.name}-{stamp}-{next(self._counter):04d}-{image_type}.fits"
            writing = asyncio.ensure_future(asyncio.to_thread(write_fits, path, data, header))
            try:
                await asyncio.shield(writing)
            except OSError as exc:
                raise GrabImageError(f"{self.name}: cannot write {path}: {exc.strerror or exc}") from None
            await self._set_status(ExposureStatus.IDLE)
            log.info("%s: wrote %s", self.name, path.name)
            if broadcast:
                await self.comm.send_event(NewImageEvent(filename=str(path), image_type=image_type))
            return str(path)
        except AbortedError as exc:
            log.warning("%s", exc)
            await self._set_status(ExposureStatus.IDLE)
            raise
        except Exception as exc:
            log.error("%s: exposure failed: %s", self.name, exc)
            await self._set_status(ExposureStatus.ERROR)
            await self._set_status(ExposureStatus.IDLE)
            raise
        except asyncio.CancelledError:  # the caller cancelled the call: the exposure ends, the sensor is idle
            log.info("%s: exposure cancelled by %s", self.name, sender)
            if writing is not None and path is not None:
                # an image nobody will get: let the writing thread finish, then remove the file
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writing, 10.0)
                path.unlink(missing_ok=True)
            await self._set_status(ExposureStatus.IDLE)
            raise
        finally:
            self._exposing = False
            self._idle.set()

    async def abort(self, **kwargs: Any) -> None:
        """Abort a running exposure and wait (up to 5 s) until the camera is idle again."""
        log.info("%s: abort() called by %s", self.name, caller(kwargs))
        if not self._exposing:
            return
        self._abort_reason = f"abort() from {caller(kwargs)}"
        self._abort.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=5.0)
        except TimeoutError:
            raise DeviceBusyError(f"{self.name}: the exposure did not stop within 5 s") from None


__all__ = ["SimCamera"]
