"""``tickline feed synthetic``, ``tickline feed replay`` and ``tickline feed tail`` (registered by ``tickline.strategy.cli``)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import time
from typing import Any, Iterator

from tickline.logs import add_arguments as add_log_arguments
from tickline.logs import kv, start_daemon

log = logging.getLogger("tickline.feed")


@contextlib.contextmanager
def aeron_client(aeron_dir: str | None, embedded: bool) -> Iterator[Any]:
    """An Aeron client on ``aeron_dir`` (default: Aeron's), or on a driver embedded in this process."""
    from tickline.transport import Aeron, MediaDriver

    if embedded:
        with MediaDriver.embedded(**({"dir": aeron_dir} if aeron_dir else {})) as driver, Aeron(driver.dir) as a:
            yield a
    else:
        with Aeron(aeron_dir) as a:
            yield a


class StopFlag:
    """Set by SIGTERM/SIGINT: the loop finishes its cycle and closes cleanly."""

    def __init__(self) -> None:
        self.stop = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._set)

    def _set(self, *_: object) -> None:
        self.stop = True


def run_agent(agent: Any, idle_name: str, seconds: float | None, stop: StopFlag) -> None:
    """Run ``agent`` on this thread until ``stop``, ``seconds`` or it terminates."""
    from tickline.transport import AgentInvoker, idle_strategy_from_name

    invoker = AgentInvoker(agent, error_handler=_raise)
    idle = idle_strategy_from_name(idle_name)
    deadline = None if seconds is None else time.monotonic() + seconds
    invoker.start()
    try:
        while not stop.stop and not invoker.is_closed and (deadline is None or time.monotonic() < deadline):
            idle.idle(invoker.invoke())
    finally:
        invoker.close()


def _raise(exc: BaseException) -> None:
    raise exc


def _symbols(text: str) -> list[str]:
    out = [s.strip() for s in text.split(",") if s.strip()]
    if not out:
        raise argparse.ArgumentTypeError("at least one symbol")
    return out


def _cmd_synthetic(args: argparse.Namespace) -> int:
    from .publisher import MarketDataPublisher
    from .synthetic import RandomWalk, SyntheticFeed

    stop = StopFlag()
    try:
        walk = RandomWalk(args.symbols, seed=args.seed, start=args.start, tick=args.tick)
    except ValueError as e:
        print(f"tickline feed synthetic: {e}", file=sys.stderr)
        return 2
    if not start_daemon(args, "tickline feed synthetic"):
        return 2
    with aeron_client(args.aeron_dir, args.embedded) as aeron:
        pub = aeron.add_exclusive_publication(args.channel, args.stream)
        publisher = MarketDataPublisher(pub)
        feed = SyntheticFeed(publisher, walk, args.rate, max_batch=args.batch, pregenerate=args.pregenerate)
        log.info("synthetic %s", kv(channel=args.channel, stream=args.stream, rate=args.rate, symbols=",".join(args.symbols),
                                    session_id=pub.session_id))
        run_agent(feed, args.idle, args.seconds, stop)
        print(json.dumps({"published": publisher.published, "next_seq": publisher.next_seq,
                          "back_pressured": publisher.back_pressured, "skipped": feed.skipped}), flush=True)
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    """The archive source: a recording replayed onto ``--channel``/``--stream`` (the strategies' stream)."""
    from tickline.archive import ArchiveError

    from .replay import ArchiveSource, ReplaySourceError

    stop = StopFlag()
    if not start_daemon(args, "tickline feed replay"):
        return 2
    with aeron_client(args.aeron_dir, args.embedded) as aeron:
        try:
            source = ArchiveSource(aeron, recording_id=args.recording_id, channel=args.from_channel, stream_id=args.from_stream,
                                   control_channel=args.archive_control_channel, control_stream_id=args.archive_control_stream)
        except (ReplaySourceError, ArchiveError, TimeoutError) as e:
            print(f"tickline feed replay: {e}", file=sys.stderr)
            return 2
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
        if args.wait_subscriber > 0:  # started with its strategies (tickline up): replay once one listens, not into nothing
            probe = aeron.add_publication(args.channel, args.stream)
            until = time.monotonic() + args.wait_subscriber
            while not probe.is_connected and not stop.stop and time.monotonic() < until:
                time.sleep(0.01)
            probe.close()
        try:
            rid = source.resolve()
            rs = source.start(args.channel, args.stream)
        except (ReplaySourceError, ArchiveError, TimeoutError) as e:
            print(f"tickline feed replay: {e}", file=sys.stderr)
            source.close()
            return 2
        log.info("replay %s", kv(recording_id=rid, channel=args.channel, stream=args.stream, replay_session_id=rs))
        try:
            while not stop.stop and (deadline is None or time.monotonic() < deadline):
                for err in source.client.poll_errors():  # a replay that failed after it started
                    log.error("replay archive_error %s", kv(error=err))
                time.sleep(0.05)
        finally:
            source.close()
    return 0


def _cmd_tail(args: argparse.Namespace) -> int:
    from tickline.transport import AgentTerminated

    from .consumer import MarketDataSubscriber

    stop = StopFlag()

    class Printer:
        seen = 0

        def _out(self, d: Any) -> None:
            Printer.seen += 1
            if not args.quiet:
                print(json.dumps({"message": d.NAME, **d.to_dict()}), flush=True)

        on_top_of_book = on_trade = on_book = on_order_update = on_snapshot = _out

    with aeron_client(args.aeron_dir, args.embedded) as aeron:
        sub = MarketDataSubscriber(aeron, args.channel, args.stream, Printer(),
                                   symbols=args.symbols or None)

        class Bounded:
            def role_name(self) -> str:
                return sub.role_name()

            def on_start(self) -> None:
                pass

            def do_work(self) -> int:
                if args.count and Printer.seen >= args.count:
                    raise AgentTerminated()
                return sub.do_work()

            def on_close(self) -> None:
                pass

        run_agent(Bounded(), "backoff", args.seconds, stop)
        print(json.dumps(sub.counters.as_dict()), file=sys.stderr, flush=True)
    return 0


def register_feed(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    feed = subparsers.add_parser("feed", help="market data: a synthetic source, a tail of a stream")
    sub = feed.add_subparsers(dest="feed_command", metavar="FEED_COMMAND")
    feed.set_defaults(func=lambda _a: feed.print_help() or 2)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--channel", default="aeron:ipc", help="Aeron channel (default aeron:ipc)")
        p.add_argument("--stream", type=int, required=True, help="stream id")
        p.add_argument("--aeron-dir", help="media driver directory (default: $AERON_DIR or /dev/shm/aeron-$USER)")
        p.add_argument("--embedded", action="store_true", help="run a media driver inside this process")
        p.add_argument("--seconds", type=float, help="stop after this long (default: until SIGTERM/Ctrl-C)")

    p = sub.add_parser("synthetic", help="publish a seeded random walk of top-of-book quotes")
    common(p)
    p.add_argument("--rate", type=float, default=1000.0, help="messages per second, all symbols together")
    p.add_argument("--symbols", type=_symbols, default=["ESZ6"], help="comma separated (default ESZ6)")
    p.add_argument("--seed", type=int, default=1, help="seed of the random walk: the same seed publishes the same quotes")
    p.add_argument("--start", type=float, default=100.0, help="first mid price")
    p.add_argument("--tick", type=float, default=0.01, help="price step")
    p.add_argument("--batch", type=int, default=256, help="most messages per batch call (one offer_frames)")
    p.add_argument("--pregenerate", type=int, default=0, metavar="N",
                   help="load mode: encode the walk's first N quotes once and publish them in a loop, "
                        "stamped per batch (prices repeat every N)")
    p.add_argument("--idle", default="backoff", help="idle strategy (busy-spin, yielding, backoff, sleeping)")
    add_log_arguments(p)
    p.set_defaults(func=_cmd_synthetic)

    p = sub.add_parser("replay", help="the archive source: replay a recording onto --channel/--stream (the strategies' stream)")
    common(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--recording-id", type=int, help="the recording to replay")
    which.add_argument("--from-stream", type=int, help="replay the latest recording of this stream")
    p.add_argument("--from-channel", help="with --from-stream: only recordings whose channel contains this")
    p.add_argument("--archive-control-channel", default="aeron:ipc", help="the archive's control channel")
    p.add_argument("--archive-control-stream", type=int, default=None, help="the archive's control stream (default its default)")
    p.add_argument("--wait-subscriber", type=float, default=30.0, metavar="SECONDS",
                   help="wait up to this long for a subscriber of --stream before the replay starts (0: don't)")
    add_log_arguments(p)
    p.set_defaults(func=_cmd_replay)

    p = sub.add_parser("tail", help="print a market-data stream as JSON lines; counters (gaps, duplicates) at the end")
    common(p)
    p.add_argument("--symbols", type=_symbols, help="only these (comma separated)")
    p.add_argument("--count", type=int, default=0, help="stop after this many messages")
    p.add_argument("--quiet", action="store_true", help="print only the counters")
    p.set_defaults(func=_cmd_tail)
