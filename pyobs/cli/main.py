"""``pyobs CONFIG.yaml``: run a module (or MultiModule) until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from pyobs.cli import early_signals, remember_signals
from pyobs.object import Object, get_object
from pyobs.utils.config import global_defaults, load_yaml
from pyobs.utils.exceptions import ConfigError, error_text

#: global options pyobs-core knows that this package accepts and does not use
_UNUSED_GLOBALS = ("syslog", "influx_log", "debug_time", "iers_offline")


def load_config(path: str) -> dict[str, Any]:
    """Read a YAML config with its ``{include ...}`` lines resolved (pyobs.utils.config);
    ConfigError naming the file, line and problem."""
    config = load_yaml(path)
    if not isinstance(config, dict):
        raise ConfigError(path, "expected a mapping with 'class:' at the top level")
    return config


def build(path: str) -> Object:
    config = load_config(path)
    try:
        return get_object(config, Object)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.key}" if exc.key else path, exc.problem) from None


async def run(obj: Object, stop: asyncio.Event | None = None) -> None:
    """Start ``obj`` (a module's ``startup()``, else ``open()``), run its ``main()`` if it has one,
    until SIGINT/SIGTERM (or ``stop``), ``quit()`` or ``main()`` returning; then close it."""
    stop = stop or asyncio.Event()
    if early_signals:  # asked to stop while starting: start and close cleanly
        stop.set()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    startup = getattr(obj, "startup", None)
    await (startup() if startup is not None else obj.open())
    logging.getLogger("pyobs.cli").debug("opened; running until SIGINT/SIGTERM")
    done = getattr(obj, "finished", None)  # modules that end by themselves (e.g. a night script)
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(obj.closing.wait())]
    main = getattr(obj, "main", None)
    if main is not None:
        waiters.append(asyncio.ensure_future(main()))
    if isinstance(done, asyncio.Event):
        waiters.append(asyncio.ensure_future(done.wait()))
    try:
        finished, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for w in finished:
            if not w.cancelled() and w.exception() is not None:
                logging.getLogger("pyobs").error("main() failed", exc_info=w.exception())
    finally:
        for w in waiters:
            w.cancel()
        await obj.close()


def main(argv: list[str] | None = None) -> int:
    remember_signals()  # until run() installs the loop's handlers
    try:
        defaults = global_defaults()
    except ConfigError as exc:
        print(f"pyobs: error in {exc}", file=sys.stderr)
        return 2
    levels = ["critical", "error", "warning", "info", "debug"]
    parser = argparse.ArgumentParser(prog="pyobs", description="Run a pyobs module from a YAML config.")
    parser.add_argument("config", help="YAML file with 'class:' and the module's arguments")
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=levels,
        default=str(defaults.get("log_level", "info")).lower(),
        help="default: log_level of the pyobs: section of ~/.config/pyobs.yaml or /etc/pyobs.yaml, "
        "or PYOBS_LOG_LEVEL; else info",
    )
    parser.add_argument("-l", "--log-file", help="also write the log into this file")
    args = parser.parse_args(argv)
    if args.log_level not in levels:
        parser.error(f"log level {args.log_level!r} (from the global config) is not one of {', '.join(levels)}")
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if args.log_file:
        handlers.append(logging.FileHandler(args.log_file))
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        handlers=handlers,
    )
    if args.log_level != "debug":
        # slixmpp logs each login and lost connection at INFO; the XMPP transport logs what matters.
        # The application's choice, made here: importing pyobs.comm.xmpp leaves logging alone
        logging.getLogger("slixmpp").setLevel(max(logging.WARNING, logging.getLogger().level))
    for key in _UNUSED_GLOBALS:
        if key in defaults:
            logging.getLogger("pyobs").info("global option %s is not used by this package", key)
    try:
        obj = build(args.config)
    except ConfigError as exc:
        print(f"pyobs: error in {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(run(obj))
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # a module that fails to open: say what, not a traceback
        logging.getLogger("pyobs").debug("failure", exc_info=True)
        print(f"pyobs: {error_text(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
