"""``pyobs CONFIG.yaml``: run a module (or MultiModule) until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from pyobs.object import Object, get_object
from pyobs.utils.exceptions import ConfigError


def load_config(path: str) -> dict[str, Any]:
    """Read a YAML config; ConfigError naming the file, line and problem."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(path, f"cannot read file: {exc.strerror or exc}") from None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(path, f"{where}invalid YAML: {problem}") from None
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
    """Open ``obj``, wait for SIGINT/SIGTERM (or ``stop``), close it."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    await obj.open()
    logging.getLogger("pyobs.cli").debug("opened; running until SIGINT/SIGTERM")
    done = getattr(obj, "finished", None)  # modules that end by themselves (e.g. a night script)
    waiters = [asyncio.ensure_future(stop.wait())]
    if isinstance(done, asyncio.Event):
        waiters.append(asyncio.ensure_future(done.wait()))
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        await obj.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyobs", description="Run a pyobs module from a YAML config.")
    parser.add_argument("config", help="YAML file with 'class:' and the module's arguments")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
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
        print(f"pyobs: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
