"""``tickline archive``: run the archive daemon, and look at or use its recordings.

    tickline archive run [--config FILE] --dir DIR [--aeron-dir D | --embedded-driver]   the daemon (until SIGTERM/SIGINT)
    tickline archive list --dir DIR [--stream-id N] [--channel TEXT]    recordings, from the catalog file
    tickline archive describe --dir DIR RECORDING_ID                     one recording, every field
    tickline archive verify --dir DIR [RECORDING_ID]                     re-read every frame of stopped recordings
    tickline archive dump --dir DIR RECORDING_ID [--position P --count N] print frames (checked first)
    tickline archive replay --recording-id N --stream-id S [...]         ask a running archive for a replay
    tickline archive truncate RECORDING_ID POSITION / purge RECORDING_ID  (a running archive does it)
    tickline archive migrate RECORDING_ID --to DIR                        move a stopped recording's segments (running archive)

``list``, ``describe`` and ``verify`` read the directory directly (no driver
needed, safe while the archive runs: the catalog is replaced atomically).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from tickline.logs import add_arguments as add_log_arguments

if TYPE_CHECKING:
    from .client import ArchiveClient


def _catalog(dir: str):  # type: ignore[no-untyped-def]
    from .catalog import CATALOG_FILE, Catalog

    if not (Path(dir) / CATALOG_FILE).exists():
        raise FileNotFoundError(f"no archive catalog: dir={dir} file={CATALOG_FILE} fault=user")
    return Catalog(dir)


def _state(d) -> str:  # type: ignore[no-untyped-def]
    from .wire import RecordingState

    return RecordingState.NAMES.get(d.state, str(d.state))


def _cmd_run(args: argparse.Namespace) -> int:
    from ..transport import Aeron, MediaDriver
    from ..transport.driver import default_dir
    from ..transport.idle import BackoffIdleStrategy
    from .config import ArchiveConfig, read_archive_section, record_streams
    from .daemon import Archive

    from tickline.logs import kv, start_daemon

    if not start_daemon(args, "tickline archive"):
        return 2
    options: dict[str, object] = read_archive_section(args.config) if args.config else {}
    aeron_dir_option = options.pop("aeron_dir", None)
    record = record_streams(options.pop("record", []))
    options.update({k: v for k, v in (("dir", args.dir), ("control_channel", args.control_channel),
                                      ("control_stream_id", args.control_stream_id), ("segment_length", args.segment_length),
                                      ("fsync", args.fsync)) if v is not None})
    config = ArchiveConfig.from_env(None, **options)
    if args.aeron_dir is None and aeron_dir_option is not None:
        args.aeron_dir = str(aeron_dir_option)
    driver = MediaDriver.embedded(args.aeron_dir) if args.embedded_driver else None
    aeron_dir = driver.dir if driver is not None else (args.aeron_dir or default_dir())
    stop = False

    def on_signal(_signo: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    aeron = Aeron(aeron_dir)
    archive = Archive(config, aeron)
    try:
        archive.on_start()
        for channel, stream_id in record:  # the section's streams, recorded from the start (each image its own recording)
            archive.add_recording_subscription(channel, stream_id)
        logging.getLogger("tickline.archive").info("ready %s", kv(dir=config.dir, aeron_dir=aeron_dir,
                                                                  control_stream_id=config.control_stream_id))
        idle = BackoffIdleStrategy()
        while not stop:
            idle.idle(archive.do_work())
    finally:
        archive.on_close()
        aeron.close()
        if driver is not None:
            driver.close()
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    cat = _catalog(args.dir)
    rows = cat.find(stream_id=args.stream_id, channel_fragment=args.channel or "")
    print(f"{'id':>6} {'state':<9} {'stream':>7} {'session':>11} {'start':>12} {'stop':>14}  channel")
    for d in rows:
        stop = "-" if d.stop_position < 0 else str(d.stop_position)
        print(f"{d.recording_id:>6} {_state(d):<9} {d.stream_id:>7} {d.session_id:>11} {d.start_position:>12} {stop:>14}  "
              f"{d.original_channel}")
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    import dataclasses

    cat = _catalog(args.dir)
    d = cat.get(args.recording_id)
    if d is None:
        print(f"tickline archive: unknown recording: recording_id={args.recording_id} dir={args.dir} fault=user", file=sys.stderr)
        return 1
    for f in dataclasses.fields(d):
        if f.name in ("control_session_id", "correlation_id"):
            continue
        from .wire import ChecksumType

        value = _state(d) if f.name == "state" else getattr(d, f.name)
        if f.name == "checksum":
            value = ChecksumType.NAMES.get(d.checksum, str(d.checksum))
        elif f.name == "segment_dir" and not value:
            value = f"{args.dir} (the archive's)"
        print(f"{f.name}: {value}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from .daemon import scan
    from .wire import RecordingState

    cat = _catalog(args.dir)
    ids = [args.recording_id] if args.recording_id is not None else sorted(cat.recordings)
    bad = 0
    for rid in ids:
        d = cat.get(rid)
        if d is None:
            print(f"recording_id={rid} result=unknown")
            bad += 1
            continue
        if d.state != RecordingState.STOPPED:
            print(f"recording_id={rid} result=skipped state={_state(d)}")
            continue
        end, damage = scan(Path(args.dir), d, d.start_position, d.stop_position)
        if damage is None and end == d.stop_position:
            print(f"recording_id={rid} result=ok start_position={d.start_position} stop_position={d.stop_position}")
        else:
            bad += 1
            print(f"recording_id={rid} result=damaged valid_to={end} stop_position={d.stop_position} damage={damage}")
    return 1 if bad else 0


def _cmd_dump(args: argparse.Namespace) -> int:
    """Frames of a recording: position, length, type, flags, and the payload's first bytes.
    The native scan checks the frames first; only what it passed is read here."""
    import struct

    from .catalog import segment_dir, segment_name
    from .daemon import scan

    cat = _catalog(args.dir)
    d = cat.get(args.recording_id)
    if d is None:
        print(f"tickline archive: unknown recording: recording_id={args.recording_id} dir={args.dir} fault=user", file=sys.stderr)
        return 1
    start = d.start_position if args.position < 0 else args.position
    stop = d.stop_position if d.stop_position >= 0 else -1
    end, damage = scan(Path(args.dir), d, start, stop)
    first = d.start_position - (d.start_position & (d.term_buffer_length - 1))
    position, shown = start, 0
    while position < end and shown < args.count:
        base = first + (position - first) // d.segment_file_length * d.segment_file_length
        with open(segment_dir(args.dir, d) / segment_name(d.recording_id, base), "rb") as f:
            f.seek(position - base)
            header = f.read(32)
            length, _version, flags, ftype = struct.unpack_from("<iBBH", header)
            payload = f.read(min(max(length - 32, 0), args.bytes)) if ftype == 1 else b""
        kind = "DATA" if ftype == 1 else "PAD"
        print(f"position={position} length={length} type={kind} flags=0x{flags:02x} payload={payload.hex()}")
        position += (length + 31) & ~31
        shown += 1
    if damage is not None:
        print(f"damage: {damage}")
        return 1
    return 0


@contextlib.contextmanager
def _connected(args: argparse.Namespace) -> Iterator["ArchiveClient"]:
    """A control session with the running archive the arguments name."""
    from ..transport import Aeron
    from .client import ArchiveClient

    with Aeron(args.aeron_dir) as aeron:
        client = ArchiveClient.connect(aeron, control_channel=args.control_channel, control_stream_id=args.control_stream_id,
                                       response_stream_id=args.response_stream_id)
        try:
            yield client
        finally:
            client.close()


def _cmd_replay(args: argparse.Namespace) -> int:
    with _connected(args) as client:
        rs = client.replay(args.recording_id, args.position, args.length, args.channel, args.stream_id)
        print(f"replay_session_id={rs}")
        while args.wait:  # keep the control session while the replay runs (until Ctrl-C)
            for e in client.poll_errors():
                print(f"replay error: {e.error_message}", file=sys.stderr)
                return 1
            time.sleep(0.1)
    return 0


def _cmd_manage(args: argparse.Namespace) -> int:
    with _connected(args) as client:
        if args.archive_command == "migrate":
            client.migrate_recording(args.recording_id, args.to, timeout=args.timeout)
            print(f"recording_id={args.recording_id} migrated_to={Path(args.to).resolve()}")
        elif args.archive_command == "truncate":
            client.truncate_recording(args.recording_id, args.position)
            print(f"recording_id={args.recording_id} truncated_at={args.position}")
        else:
            client.purge_recording(args.recording_id)
            print(f"recording_id={args.recording_id} purged")
    return 0


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Errors the user should read (a damaged catalog, a missing directory, a refused request) as one line, exit 1."""
    from .errors import ArchiveError

    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except (ArchiveError, OSError, TimeoutError, ValueError) as exc:
            print(f"tickline archive: {exc}", file=sys.stderr)
            return 1

    return run


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``tickline bench archive`` (archive/bench.py)."""
    from .bench import register_bench as register_archive_bench

    register_archive_bench(bench_subparsers)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from .config import DEFAULT_CONTROL_STREAM_ID, DEFAULT_RESPONSE_STREAM_ID

    p = subparsers.add_parser("archive", help="record streams and replay them (the archive daemon and its tools)")
    sub = p.add_subparsers(dest="archive_command", metavar="ARCHIVE_COMMAND")
    p.set_defaults(func=lambda _a: p.print_help() or 2)

    r = sub.add_parser("run", help="run the archive daemon until SIGTERM/SIGINT")
    r.add_argument("--config", help="topology file: its [archive] table gives the options (flags win; TICKLINE_ARCHIVE_* win over both)")
    r.add_argument("--dir", help="archive directory (or TICKLINE_ARCHIVE_DIR)")
    r.add_argument("--aeron-dir", help="media driver directory (default: $AERON_DIR or /dev/shm/aeron-$USER)")
    r.add_argument("--embedded-driver", action="store_true", help="run an embedded media driver in this process")
    r.add_argument("--control-channel", help="channel the daemon takes control requests on (default: the config's, aeron:ipc)")
    r.add_argument("--control-stream-id", type=int, help="stream id of the control requests (default: the config's)")
    r.add_argument("--segment-length", help="bytes per segment file (e.g. 64m)")
    r.add_argument("--fsync", help="none | segment | stop | <N>ms")
    add_log_arguments(r)
    r.set_defaults(func=_guarded(_cmd_run))

    ls = sub.add_parser("list", help="list recordings (reads the catalog file)")
    ls.add_argument("--dir", required=True, help="the archive directory (holds the catalog)")
    ls.add_argument("--stream-id", type=int, help="only recordings of this stream id")
    ls.add_argument("--channel", help="only channels containing this text")
    ls.set_defaults(func=_guarded(_cmd_list))

    d = sub.add_parser("describe", help="every field of one recording")
    d.add_argument("--dir", required=True, help="the archive directory (holds the catalog)")
    d.add_argument("recording_id", type=int, help="the recording to describe")
    d.set_defaults(func=_guarded(_cmd_describe))

    v = sub.add_parser("verify", help="re-read every frame of stopped recordings; exit 1 on damage")
    v.add_argument("--dir", required=True, help="the archive directory (holds the catalog)")
    v.add_argument("recording_id", type=int, nargs="?", help="the recording to verify (default: every stopped one)")
    v.set_defaults(func=_guarded(_cmd_verify))

    def online(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--aeron-dir", help="media driver directory (default: $AERON_DIR or /dev/shm/aeron-$USER)")
        parser.add_argument("--control-channel", default="aeron:ipc", help="the running archive's control request channel")
        parser.add_argument("--control-stream-id", type=int, default=DEFAULT_CONTROL_STREAM_ID, help="the running archive's control request stream id")
        parser.add_argument("--response-stream-id", type=int, default=DEFAULT_RESPONSE_STREAM_ID, help="stream id this tool takes the answers on")

    dp = sub.add_parser("dump", help="print a recording's frames (checked first)")
    dp.add_argument("--dir", required=True, help="the archive directory (holds the catalog)")
    dp.add_argument("recording_id", type=int, help="the recording to print")
    dp.add_argument("--position", type=int, default=-1, help="a frame boundary (-1: the start)")
    dp.add_argument("--count", type=int, default=20, help="frames to print")
    dp.add_argument("--bytes", type=int, default=16, help="payload bytes to show per frame")
    dp.set_defaults(func=_guarded(_cmd_dump))

    rp = sub.add_parser("replay", help="ask a running archive to replay a recording to a channel/stream")
    online(rp)
    rp.add_argument("--recording-id", type=int, required=True, help="the recording to replay")
    rp.add_argument("--position", type=int, default=-1, help="-1: from the start")
    rp.add_argument("--length", type=int, default=-1, help="-1: to the stop (following a live recording)")
    rp.add_argument("--channel", default="aeron:ipc", help="where to replay")
    rp.add_argument("--stream-id", type=int, required=True, help="the stream id to replay to")
    rp.add_argument("--wait", action="store_true", help="keep the control session open and report replay errors")
    rp.set_defaults(func=_guarded(_cmd_replay))

    t = sub.add_parser("truncate", help="ask a running archive to cut a stopped recording at a position")
    online(t)
    t.add_argument("recording_id", type=int, help="a stopped recording")
    t.add_argument("position", type=int, help="the new stop position (a frame boundary)")
    t.set_defaults(func=_guarded(_cmd_manage))

    mg = sub.add_parser("migrate", help="ask a running archive to move a stopped recording's segment files to another directory")
    online(mg)
    mg.add_argument("recording_id", type=int, help="a stopped recording")
    mg.add_argument("--to", required=True, help="an existing, writable directory")
    mg.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the move to finish")
    mg.set_defaults(func=_guarded(_cmd_manage))

    pg = sub.add_parser("purge", help="ask a running archive to delete a stopped recording and its files")
    online(pg)
    pg.add_argument("recording_id", type=int, help="a stopped recording")
    pg.set_defaults(func=_guarded(_cmd_manage))
