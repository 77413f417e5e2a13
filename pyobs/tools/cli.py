"""``pyobs-comm``: look at and drive a running observatory from a shell, on any transport."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from pyobs.comm import Comm
from pyobs.utils.exceptions import ConfigError, RemoteTimeoutError

from .connect import PASSWORD_ENV, BusOptions, join_bus
from .fleet import LEVELS, Fleet, interface_named, parse_arguments, plain, signature

#: exit codes (also in --help)
OK, REMOTE_ERROR, USAGE, NO_BUS, TIMED_OUT, INTERRUPTED = 0, 1, 2, 3, 4, 130

EXAMPLES = f"""
examples:
  pyobs-comm --config examples/observatory.yaml ls --methods      # run the simulated observatory here and list it
  export {PASSWORD_ENV}=secret
  pyobs-comm --xmpp tool@obs.example.org --server xmpp.example.org:5222 ls
  pyobs-comm --xmpp tool@obs.example.org call telescope move_radec 83.8 -5.4
  pyobs-comm --xmpp tool@obs.example.org --json call telescope move_radec ra=83.8 dec=-5.4
  pyobs-comm --dbus tool watch --module telescope --event MotionStatusChangedEvent
  pyobs-comm --dbus tool state telescope IPointingRaDec --follow
  pyobs-comm --dbus tool logs --level WARNING
  pyobs-comm --config tool.yaml dashboard --port 8080      # the web dashboard (see its --help)
  source <(pyobs-comm completion bash)                       # shell completion

exit codes: {OK} ok, {REMOTE_ERROR} the remote method raised, {USAGE} bad usage or arguments that do not fit
the remote signature, {NO_BUS} cannot join the bus / module not online, {TIMED_OUT} a deadline passed,
{INTERRUPTED} interrupted.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyobs-comm",
        description="Inspect and drive the modules on a pyobs bus (XMPP, D-Bus or a LocalComm MultiModule).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bus = parser.add_argument_group("which bus (one of --config, --xmpp, --dbus)")
    bus.add_argument("--config", "-c", metavar="FILE", help="YAML with a 'comm:' mapping, or a MultiModule to run here")
    bus.add_argument(
        "--xmpp",
        metavar="USER@DOMAIN",
        help=f"join XMPP as this account (password: --password-file or ${PASSWORD_ENV})",
    )
    bus.add_argument("--server", metavar="HOST:PORT", help="XMPP server (default: the domain, port 5222)")
    bus.add_argument("--password-file", metavar="FILE", help="file whose first line is the XMPP password")
    bus.add_argument("--ca-file", metavar="FILE", help="CA certificate to verify the XMPP server with")
    bus.add_argument("--no-tls", action="store_true", help="do not use STARTTLS (test servers on 127.0.0.1 only)")
    bus.add_argument("--dbus", metavar="NAME", help="join D-Bus under this name")
    bus.add_argument("--bus", default="session", help="D-Bus bus: session, system or an address (default: session)")
    bus.add_argument("--dbus-prefix", metavar="PREFIX", help="D-Bus name prefix of the fleet (org.pyobs.module)")
    parser.add_argument("--name", help="our name on a LocalComm network (default: pyobs-comm)")
    parser.add_argument("--timeout", type=float, default=10.0, help="deadline of calls and requests in s (default 10)")
    parser.add_argument(
        "--wait-for", metavar="MODULE", action="append", default=[],
        help="wait (at most --timeout) until MODULE is online first; repeatable, or comma-separated",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="machine-readable output: one JSON object per line")
    parser.add_argument("--log-level", default="WARNING", choices=list(LEVELS), help="our own log level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("ls", help="modules online with state and interfaces", description="List the modules online.")
    p.add_argument("--methods", "-m", action="store_true", help="also their methods with signatures")

    p = sub.add_parser(
        "call", help="call a method", description="Call MODULE.METHOD; ARGS are positional or name=value, "
        "values as JSON (12.5, true, [1,2]) or plain text, cast by the remote signature.",
        epilog="example: pyobs-comm ... call telescope move_radec ra=83.8 dec=-5.4",
    )  # fmt: skip
    p.add_argument("module")
    p.add_argument("method")
    p.add_argument("args", nargs="*", metavar="ARG")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress line")

    p = sub.add_parser("watch", help="live events, one line each", description="Print events as they arrive.")
    _follow_options(p)
    p.add_argument("--module", "-M", action="append", default=[], help="only events from this module (repeatable)")
    p.add_argument("--event", "-e", action="append", default=[], help="only this event type (repeatable)")

    p = sub.add_parser("state", help="published state of a module", description="Print a module's published state.")
    p.add_argument("module")
    p.add_argument("interface", nargs="?", help="only this interface (e.g. IPointingRaDec)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing changes")
    _follow_options(p)

    p = sub.add_parser("logs", help="live log lines (LogEvents)", description="Print the modules' log lines.")
    _follow_options(p)
    p.add_argument("--module", "-M", action="append", default=[], help="only this module (repeatable)")
    p.add_argument("--level", "-l", default="INFO", choices=list(LEVELS), help="minimum level (default INFO)")

    p = sub.add_parser("dashboard", help="serve the web dashboard", description="Serve the web dashboard.")
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0: any free port)")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--login-file", metavar="FILE", help="file with the dashboard password (default: a random token)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")

    p = sub.add_parser("completion", help="print a shell completion script", description="Shell completion.")
    p.add_argument("shell", choices=["bash", "zsh"])
    return parser


def _follow_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--count", "-n", type=int, help="stop after this many lines")
    p.add_argument("--duration", "-t", type=float, help="stop after this many seconds")


# ------------------------------------------------------------------------------------------ output


class Output:
    def __init__(self, as_json: bool, out: TextIO | None = None) -> None:
        self.as_json = as_json
        self.out = out if out is not None else sys.stdout

    def line(self, text: str, record: Any) -> None:
        self.out.write((json.dumps(record, default=str) if self.as_json else text) + "\n")
        self.out.flush()


def _fmt_value(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}={_fmt_value(v)}" for k, v in value.items() if k != "time")
    if isinstance(value, list):
        return "[" + ", ".join(_fmt_value(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d}"


def _exc_type(exc: BaseException) -> str:
    original = getattr(exc, "original_type", None)
    return str(original) if original else type(exc).__name__


# ------------------------------------------------------------------------------------------ commands


class Limit:
    """How many more lines a follow may print (--count); ``done`` is set when it may print no more."""

    def __init__(self, count: int | None) -> None:
        self.left = count
        self.done = asyncio.Event()
        if count is not None and count <= 0:
            self.done.set()

    def take(self) -> bool:
        """Whether one more line may be printed (counting it)."""
        if self.done.is_set():
            return False
        if self.left is not None:
            self.left -= 1
            if self.left <= 0:
                self.done.set()
        return True


async def _follow(args: argparse.Namespace, register: Callable[[Limit], None]) -> None:
    """Run until --duration passes, --count lines were printed or Ctrl-C."""
    limit = Limit(args.count)
    register(limit)
    try:
        await asyncio.wait_for(limit.done.wait(), args.duration)
    except TimeoutError:
        pass


async def cmd_ls(fleet: Fleet, args: argparse.Namespace, out: Output) -> int:
    for info in fleet.modules():
        if out.as_json:
            out.line("", info.to_dict(with_methods=args.methods))
            continue
        state = info.state + (f" ({info.message})" if info.message else "")
        label = f' "{info.label}"' if info.label != info.name else ""
        out.line(f"{info.name}{label}  [{state}]  {', '.join(info.interfaces)}", None)
        if args.methods:
            for spec in info.methods.values():
                out.line(f"    {signature(spec)}    ({spec.interface.__name__})", None)
    return OK


async def _resolve(fleet: Fleet, module: str) -> None:
    """A module the transport is still discovering (it just came online) is waited for, bounded."""
    with contextlib.suppress(ValueError):
        await fleet.comm.get_interfaces(module)


async def cmd_call(fleet: Fleet, args: argparse.Namespace, out: Output) -> int:
    await _resolve(fleet, args.module)
    try:
        spec = fleet.method(args.module, args.method)
    except ValueError as exc:
        print(f"pyobs-comm: {exc}", file=sys.stderr)
        return NO_BUS if "not online" in str(exc) else USAGE
    try:
        values = parse_arguments(spec, args.args)
    except (TypeError, ValueError) as exc:
        print(f"pyobs-comm: bad arguments for {args.module}.{args.method}: {exc}", file=sys.stderr)
        return USAGE
    progress = Progress(f"{args.module}.{args.method}()", fleet.comm.timeout, enabled=not args.quiet)
    task = asyncio.ensure_future(fleet.call(args.module, args.method, values, progress.deadline, progress.report))
    progress.start()
    try:
        result = await asyncio.shield(task)
    except asyncio.CancelledError:  # Ctrl-C: do not leave the call running behind us
        progress.end()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise
    except RemoteTimeoutError as exc:
        progress.end()
        _report_error(out, args, exc)
        return TIMED_OUT
    except Exception as exc:
        progress.end()
        _report_error(out, args, exc)
        return REMOTE_ERROR
    progress.end()
    if out.as_json:
        out.line("", {"module": args.module, "method": args.method, "ok": True, "result": plain(result)})
    elif not spec.void or result is not None:
        out.line(json.dumps(plain(result)) if not isinstance(result, str) else result, None)
    return OK


def _report_error(out: Output, args: argparse.Namespace, exc: BaseException) -> None:
    if out.as_json:
        out.line("", {"module": args.module, "method": args.method, "ok": False,
                      "error": {"type": _exc_type(exc), "message": str(exc)}})  # fmt: skip
    print(f"pyobs-comm: {args.module}.{args.method}() raised {_exc_type(exc)}: {exc}", file=sys.stderr)


class Progress:
    """A line on stderr while a call runs: elapsed time and the deadline (moved by ``@timeout``).

    On a terminal the line is rewritten in place; otherwise one line when the deadline moves.
    """

    def __init__(self, what: str, timeout: float, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.what = what
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.until = self.started + timeout
        self._task: asyncio.Task[None] | None = None
        self.notice = ""

    def deadline(self, seconds: float) -> None:
        self.until = time.monotonic() + seconds
        if self.enabled and not self.tty:
            self.stream.write(
                f"pyobs-comm: {self.what} running, deadline in {seconds:.1f} s (announced by the module)\n"
            )
            self.stream.flush()

    def report(self, fraction: float | None, message: str) -> None:
        """A progress notice of the callee: shown in the line (on a terminal)."""
        percent = f"{100 * fraction:.0f}% " if fraction is not None else ""
        self.notice = f"{percent}{message}".strip()

    def start(self) -> None:
        if self.enabled and self.tty:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        spinner = "|/-\\"
        i = 0
        while True:
            await asyncio.sleep(0.2)  # a refresh rate, not a wait for a condition
            now = time.monotonic()
            left = max(0.0, self.until - now)
            notice = f", {self.notice}" if self.notice else ""
            self.stream.write(
                f"\r\033[K{spinner[i % 4]} {self.what} {now - self.started:.1f} s{notice}, deadline in {left:.1f} s"
            )
            self.stream.flush()
            i += 1

    def end(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self.stream.write("\r\033[K")
            self.stream.flush()


async def cmd_watch(fleet: Fleet, args: argparse.Namespace, out: Output) -> int:
    modules, types = set(args.module), set(args.event)

    def register(limit: Limit) -> None:
        def listener(kind: str, record: dict[str, Any]) -> None:
            if kind == "fleet":
                record = {"time": time.time(), "sender": record["module"],
                          "type": "ModuleOpenedEvent" if record["online"] else "ModuleClosedEvent",
                          "data": {"module": record["module"]}}  # fmt: skip
            elif kind == "log":
                record = {"time": time.time(), "sender": record["sender"], "type": "LogEvent", "data": record}
            elif kind != "event":
                return
            if (modules and record["sender"] not in modules) or (types and record["type"] not in types):
                return
            if not limit.take():
                return
            out.line(
                f"{_clock(record['time'])} {record['sender']:<12} {record['type']:<28} {_fmt_value(record['data'])}",
                record,
            )

        fleet.add_listener(listener)

    await _follow(args, register)
    return OK


async def cmd_state(fleet: Fleet, args: argparse.Namespace, out: Output) -> int:
    await _resolve(fleet, args.module)
    try:
        info = fleet.module(args.module)
        if args.interface:
            iface = interface_named(args.interface)
            if iface.__name__ not in info.interfaces:
                raise ValueError(f"module '{args.module}' does not implement {args.interface}")
            if iface.own_state_class() is None:
                raise ValueError(f"{args.interface} publishes no state")
    except ValueError as exc:
        print(f"pyobs-comm: {exc}", file=sys.stderr)
        return NO_BUS if "not online" in str(exc) else USAGE

    def matches(record: dict[str, Any]) -> bool:
        return record["module"] == args.module and (not args.interface or record["interface"] == args.interface)

    def show(record: dict[str, Any]) -> bool:
        if not matches(record):
            return False
        out.line(f"{record['interface']:<20} {_fmt_value(record['value'])}", record)
        return True

    current = [r for (m, _), r in sorted(fleet.states.items()) if m == args.module]
    shown = sum(show(r) for r in current)
    if not args.follow:
        if not shown:
            print(f"pyobs-comm: {args.module} publishes no state{' for ' + args.interface if args.interface else ''}",
                  file=sys.stderr)  # fmt: skip
        return OK

    def register(limit: Limit) -> None:
        def listener(kind: str, record: dict[str, Any]) -> None:
            if kind == "state" and matches(record) and limit.take():
                show(record)

        fleet.add_listener(listener)

    await _follow(args, register)
    return OK


async def cmd_logs(fleet: Fleet, args: argparse.Namespace, out: Output) -> int:
    modules, level = set(args.module), LEVELS[args.level]

    def register(limit: Limit) -> None:
        def listener(kind: str, record: dict[str, Any]) -> None:
            if kind != "log" or (modules and record["sender"] not in modules):
                return
            if LEVELS.get(str(record["level"]).upper(), 0) < level or not limit.take():
                return
            out.line(f"{record['time'][11:23]} {record['level']:<8} {record['sender']:<12} {record['message']}", record)

        fleet.add_listener(listener)

    await _follow(args, register)
    return OK


async def cmd_dashboard(comm: Comm, args: argparse.Namespace) -> int:
    from pyobs.modules.web.server import DashboardServer, read_login

    server = DashboardServer(comm, port=args.port, bind=args.bind, password=read_login(args.login_file))
    await server.start()
    print(f"pyobs-comm: dashboard at {server.url}", flush=True)
    try:
        await asyncio.wait_for(asyncio.Event().wait(), args.duration)  # until Ctrl-C or --duration
    except TimeoutError:
        pass
    finally:
        await server.stop()
    return OK


COMMANDS = {"ls": cmd_ls, "call": cmd_call, "watch": cmd_watch, "state": cmd_state, "logs": cmd_logs}


async def main_async(args: argparse.Namespace) -> int:
    """:func:`run` ended by SIGINT (Ctrl-C) or SIGTERM: it leaves the bus cleanly, exit code 130.

    Installed here, not left to Python's default: a tool started in the background by a script
    inherits an ignored SIGINT, and should still stop when told to."""
    import signal

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    stopped: list[int] = []

    def stop(sig: int) -> None:
        stopped.append(sig)
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, sig)
    try:
        return await run(args)
    except asyncio.CancelledError:
        if stopped:
            return INTERRUPTED
        raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def run(args: argparse.Namespace) -> int:
    options = BusOptions(
        config=args.config, xmpp=args.xmpp, server=args.server, password_file=args.password_file,
        ca_file=args.ca_file, no_tls=args.no_tls, dbus=args.dbus, bus=args.bus, dbus_prefix=args.dbus_prefix,
        name=args.name,
        timeout=args.timeout,
    )  # fmt: skip
    out = Output(args.json)
    wait_for = [m for item in args.wait_for for m in item.split(",") if m]
    try:
        async with join_bus(options) as comm:
            if args.command == "dashboard":
                return await cmd_dashboard(comm, args)
            fleet = Fleet(comm)
            await fleet.start(states=args.command == "state")
            missing = await fleet.wait_for(wait_for, args.timeout) if wait_for else []
            if missing:
                print(f"pyobs-comm: not online after {args.timeout:g} s: {', '.join(missing)}", file=sys.stderr)
                return NO_BUS
            if args.command == "state":  # the module may have just arrived: take its state now
                await fleet._follow(args.module)
            try:
                return await COMMANDS[args.command](fleet, args, out)
            finally:
                await fleet.stop()
    except ConfigError as exc:
        print(f"pyobs-comm: {exc}", file=sys.stderr)
        return NO_BUS
    except (OSError, ConnectionError, TimeoutError) as exc:
        print(f"pyobs-comm: cannot join the bus: {type(exc).__name__}: {exc}", file=sys.stderr)
        return NO_BUS


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    """A completion script generated from the parser: subcommands and their options."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    global_opts = " ".join(o for a in parser._actions for o in a.option_strings)
    cases = []
    for name, p in sub.choices.items():
        opts = " ".join(o for a in p._actions for o in a.option_strings)
        choices = " ".join(c for a in p._actions if a.choices and not a.option_strings for c in a.choices)
        cases.append(f'        {name}) words="{opts} {choices}" ;;')
    commands = " ".join(sub.choices)
    body = "\n".join(cases)
    script = f"""# pyobs-comm completion ({shell}); generated by `pyobs-comm completion {shell}`
_pyobs_comm() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" command="" w words
    for w in "${{COMP_WORDS[@]:1:COMP_CWORD-1}}"; do
        case " {commands} " in *" $w "*) command="$w"; break ;; esac
    done
    case "$command" in
{body}
        *) words="{global_opts} {commands}" ;;
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
"""
    if shell == "zsh":
        script = "autoload -U +X bashcompinit && bashcompinit\n" + script
    return script + "complete -o default -F _pyobs_comm pyobs-comm\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "completion":
        sys.stdout.write(completion_script(parser, args.shell))
        return OK
    # records from INFO up exist (modules run here by a LocalComm config publish them as LogEvents);
    # stderr shows them from --log-level up
    logging.basicConfig(
        level=min(logging.INFO, LEVELS[args.log_level]),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for handler in logging.getLogger().handlers:
        handler.setLevel(args.log_level)
    try:
        return asyncio.run(main_async(args))
    except KeyboardInterrupt:
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
