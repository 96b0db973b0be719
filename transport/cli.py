"""Transport commands: ``driver``, ``stat``, ``demo`` and ``bench ping``."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time

from tickline.logs import add_arguments as add_log_arguments


def _die_with_parent() -> None:
    # in the aeronmd child: SIGTERM when `tickline driver` dies (even by SIGKILL), so no driver is orphaned
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _cmd_driver(args: argparse.Namespace) -> int:
    import logging

    from tickline.logs import kv, start_daemon

    from .driver import aeronmd_path, default_dir, driver_pid_if_active, private_umask, remove_dead_driver_dir

    if not start_daemon(args, "tickline driver"):
        return 2
    log = logging.getLogger("tickline.driver")
    d = args.dir or default_dir()
    dead = remove_dead_driver_dir(d)
    if dead is not None:
        log.warning("removed a dead driver's directory: %s", kv(dir=d, pid=dead))
    pid = driver_pid_if_active(d)
    if pid is not None:
        log.error("a live media driver already uses this directory: %s", kv(dir=d, pid=pid))
        return 1
    from .driver_properties import unknown

    for name in unknown([o.partition("=")[0] for o in args.define]):
        log.warning("unknown property, Aeron ignores it: %s", kv(fault="user", property=name))
    argv = [aeronmd_path(), f"-Daeron.dir={d}"] + [f"-D{o}" for o in args.define]
    # Private files: directories 0700, cnc.dat and log buffers 0600 (0770/0660 with --group-access);
    # the aeronmd child inherits the umask.
    os.umask(private_umask(args.group_access))
    # aeronmd runs as a child: SIGTERM/SIGINT are passed on to its clean shutdown, after
    # which it exits with the signal's number; that is a clean stop here, exit 0.
    child = subprocess.Popen(argv, preexec_fn=_die_with_parent)
    log.info("running %s", kv(dir=d, pid=os.getpid(), aeronmd_pid=child.pid))
    stopped_by: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        stopped_by.append(signum)
        child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    rc = child.wait()
    if stopped_by and rc in (*stopped_by, *(-s for s in stopped_by)):
        log.info("stopped %s", kv(signal=signal.Signals(stopped_by[0]).name))
        return 0
    return rc if rc >= 0 else 128 - rc


def _cmd_stat(args: argparse.Namespace) -> int:
    from .._aeron import DriverError
    from . import counters as c
    from .driver import default_dir

    if args.cleanup:
        return _cleanup(args.dir)
    d = args.dir or default_dir()
    if args.stream is not None and not -(2**31) <= args.stream < 2**31:
        print(f"tickline stat: --stream out of range: fault=user value={args.stream} range=int32", file=sys.stderr)
        return 2
    if args.prometheus and args.view != "counters":
        print(f"tickline stat: --prometheus prints the counters, not --view {args.view}: fault=user", file=sys.stderr)
        return 2
    while True:
        try:
            if args.view == "loss":
                text = c.format_loss(d, c.read_loss_report(d), args.channel, args.stream)
            else:
                stat = c.read_stat(d)
                if args.prometheus:
                    text = c.format_prometheus(stat).rstrip("\n")
                elif args.view == "streams":
                    text = c.format_streams(stat, args.channel, args.stream)
                elif args.view == "backlog":
                    text = c.format_backlog(stat, args.channel, args.stream)
                else:
                    text = c.format_stat(stat, args.filter, errors=not args.no_errors)
        except DriverError as e:
            print(f"tickline stat: {e}", file=sys.stderr)
            return 1
        except c.CncFormatError as e:
            print(f"tickline stat: {e}", file=sys.stderr)
            return 1
        except FileNotFoundError as e:
            print(f"tickline stat: no such file: file={e.filename} fault=user (no driver in this directory, "
                  f"or it has reported no loss)", file=sys.stderr)
            return 1
        except re.error as e:
            print(f"tickline stat: bad --filter regex: fault=user filter={args.filter!r} error={e}", file=sys.stderr)
            return 2
        except OSError as e:
            print(f"tickline stat: cannot read: file={e.filename} error={e.strerror}", file=sys.stderr)
            return 1
        if args.watch:
            print("\033[H\033[2J", end="")
        print(text, flush=True)
        if not args.watch:
            return 0
        time.sleep(args.watch)


def _cleanup(dir: str | None) -> int:
    from .driver import dead_driver_dirs, default_dir, remove_dead_driver_dir

    candidates = [dir] if dir else [d for d, _ in dead_driver_dirs(os.path.dirname(default_dir()))]
    removed = 0
    for d in candidates:
        pid = remove_dead_driver_dir(d)  # checked again just before removing
        if pid is not None:
            removed += 1
            print(f"removed dead driver directory: dir={d} pid={pid}")
    print(f"tickline stat: removed={removed}")
    return 0


# The benchmark module loads only when one of its commands runs.
def _cmd_demo(args: argparse.Namespace) -> int:
    from .bench import cmd_demo

    return cmd_demo(args)


def _cmd_bench_ping(args: argparse.Namespace) -> int:
    from .bench import cmd_bench_ping

    return cmd_bench_ping(args)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("driver", help="run the Aeron media driver (aeronmd) in the foreground")
    p.add_argument("--dir", help="driver directory (default: $AERON_DIR or /dev/shm/aeron-$USER)")
    p.add_argument("-D", dest="define", action="append", default=[], metavar="aeron.NAME=VALUE",
                   help="an Aeron driver property, e.g. -D aeron.threading.mode=SHARED (repeatable)")
    p.add_argument("--group-access", action="store_true",
                   help="directories 0770 and files 0660 (default 0700/0600): for clients of other users in the group")
    add_log_arguments(p)
    p.set_defaults(func=_cmd_driver)

    p = subparsers.add_parser("stat", help="print a driver's counters and errors, like AeronStat")
    p.add_argument("--dir", help="driver directory (default: $AERON_DIR or /dev/shm/aeron-$USER)")
    p.add_argument("--filter", help="only counters whose label matches this regex (view counters)")
    p.add_argument("--view", choices=("counters", "streams", "loss", "backlog"), default="counters",
                   help="counters: every counter and the error log (AeronStat); streams: per stream, positions, "
                        "limits and lag (StreamStat); loss: the driver's loss report (LossStat); backlog: sender, "
                        "receiver and subscriber backlogs (BacklogStat) (default: %(default)s)")
    p.add_argument("--channel", metavar="SUBSTR", help="views streams/loss/backlog: only channels containing SUBSTR")
    p.add_argument("--stream", type=int, metavar="N", help="views streams/loss/backlog: only stream id N")
    p.add_argument("--prometheus", action="store_true",
                   help="print every counter (the driver's and components') in the Prometheus text format, "
                        "for a node exporter's textfile collector")
    p.add_argument("--no-errors", action="store_true", help="leave the error log out")
    p.add_argument("--watch", type=float, default=0.0, metavar="SECONDS", help="refresh every SECONDS")
    p.add_argument("--cleanup", action="store_true",
                   help="remove dead drivers' directories (--dir, or every one of this user beside the default dir)")
    p.set_defaults(func=_cmd_stat)

    # `tickline demo ping` runs _cmd_demo's ping-pong: the `demo` command itself is the
    # trading pipeline's (tickline.topology.cli), which registers both.


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = bench_subparsers.add_parser("ping", help="IPC (and UDP) ping-pong and throughput, Python vs the C client")
    p.add_argument("--udp", action="store_true", help="also measure UDP over loopback")
    p.add_argument("--sizes", default="32,256", help="message sizes in bytes (comma separated)")
    p.add_argument("--count", type=int, default=200_000, help="measured round trips per case")
    p.add_argument("--warmup", type=int, default=50_000, help="round trips before measuring")
    p.add_argument("--throughput-count", type=int, default=20_000_000, help="messages per throughput case (0 skips)")
    p.add_argument("--batch", type=int, default=1024, help="messages per offer_batch call")
    p.add_argument("--runs", type=int, default=1, help="repeat the whole benchmark")
    p.add_argument("--python-only", action="store_true", help="skip the C reference")
    p.add_argument("--pyaeron", metavar="PYTHON",
                   help="also measure pyaeron (another binding of the same client) with this interpreter (IPC cases)")
    from tickline import benchkit

    benchkit.add_output_args(p)
    p.set_defaults(func=lambda a: benchkit.run_guarded("tickline bench ping", _cmd_bench_ping, a))
