"""``tickline bench archive``: what recording and replaying cost, as ratios measured in the same run.

Per message size (32 B and 1 KiB by default), per run:

- **record**: a publisher process offers ``--bytes`` of messages at full rate
  (a native loop) on IPC to a subscriber process (a native fragment poll),
  with recording off and with the archive recording the stream (the two in
  turn first from run to run, so a drift in the machine weighs on both).
  Reported: the publisher's throughput on and off (target on >= 80% of off),
  and the live recording's throughput end to end (stream bytes from the
  publisher's first offer to the stopped, synced recording: bounded by the
  publisher).
- **write**: the recorder's write path with the data there: a publisher
  fills the stream up to its window (half the IPC term, at most ``--bytes``)
  while the native recorder waits, then the recorder writes all of it to
  segment files (pre-allocating them, fsync as the policy says); against
  ``dd`` writing as many bytes in the recorder's largest write
  (``--record-block-bytes``) to the same directory with the same fsync
  policy (target >= 90% at 1 KiB).
- **replay**: the recording is replayed (from page cache: it was just
  written) to the same subscriber loop; its messages/s and MB/s against that
  subscriber reading the live stream in the "off" run (target >= 80%).  The
  subscriber polls before the replay is requested, as it polls before the
  publisher starts in the live case.

Then **replay-merge**: a recording of ``--merge-bytes`` (1 GiB by default) of
1 KiB messages whose publication stays open; the time from the
``ReplayMerge`` request to merged on the live stream (every message through
``ReplayMerge``'s Python handler).

The archive runs in this process on its own thread (its own Aeron client);
publisher and subscriber are child processes (``python -m
tickline.archive.bench pub|drain``) talking to it over the same driver (an
embedded one unless ``--aeron-dir`` names a running driver).  The ratios
printed after the table are medians over the runs of each run's ratio, each
run's beside it.  One unmeasured round of every case (a few MiB) comes first.

Both native loops spin while they find nothing to do and yield the CPU every
64 empty tries (Aeron's backoff without the park): the same loops in every
case, which on a machine with fewer cores than busy threads stops a caught-up
loop from spinning through the time of the thread it waits for.

CPU seconds per GiB of stream are printed by role and case (Linux): the
publisher's and subscriber's loop threads (from their first message), the
archive's agent thread, and this process's other threads (the embedded
driver's and the Aeron clients'), from "go" until every byte was published,
received and recorded (or replayed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .. import benchkit

BASELINE, ARCHIVE = "baseline", "archive"
#: Each ratio's target (the issue's): key prefix -> (sizes it applies to or None for all, target).
TARGETS: dict[str, tuple[tuple[int, ...] | None, float]] = {
    "publisher_on_off": (None, 0.80), "record_write_vs_dd": ((1024,), 0.90), "replay_vs_live": (None, 0.80)}
MiB = 1 << 20


# ---------------------------------------------------------------- child processes


def _child(argv: list[str]) -> int:
    """``pub DIR CHANNEL STREAM LENGTH COUNT`` or ``drain DIR CHANNEL STREAM``: a JSON line
    ``ready`` on stdout, then wait for ``go`` on stdin, run the native loop, print its result."""
    from .. import _aeron
    from ..transport import Aeron

    role, aeron_dir, channel, stream = argv[0], argv[1], argv[2], int(argv[3])
    out = sys.stdout

    def say(**kv: Any) -> None:
        out.write(json.dumps(kv) + "\n")
        out.flush()

    with Aeron(aeron_dir, timeout=60.0) as aeron:
        if role == "pub":
            length, count = int(argv[4]), int(argv[5])
            pub = aeron.add_exclusive_publication(channel, stream)
            say(ready=True, session_id=pub.session_id, position=pub.position)
            words = sys.stdin.readline().split()  # "go" or "go COUNT"
            if not words or words[0] != "go":
                return 1
            count = int(words[1]) if len(words) > 1 else count
            cpu = time.thread_time_ns()
            sent, start, end, pressured, position = _aeron.archive_bench_offer(pub, length, count, 600.0)
            cpu = time.thread_time_ns() - cpu
            say(sent=sent, start_ns=start, end_ns=end, back_pressured=pressured, position=position, cpu_ns=cpu)
            sys.stdin.readline()  # "close": the publication stays open until then (replay-merge needs it live)
            pub.close()
        else:
            sub = aeron.add_subscription(channel, stream)
            say(ready=True)
            words = sys.stdin.readline().split()  # "go SESSION COUNT", or "go any COUNT": the first image that comes
            if not words or words[0] != "go":
                return 1
            any_image = words[1] == "any"
            session_id, count = 0 if any_image else int(words[1]), int(words[2])
            fragments, nbytes, first, end, position, cpu = _aeron.archive_bench_drain(sub, session_id, count, 600.0, any_image)
            say(fragments=fragments, bytes=nbytes, first_ns=first, end_ns=end, position=position, cpu_ns=cpu)
            sub.close()
    return 0


class _Proc:
    """A bench child: JSON lines out, commands in; killed by PID when left running."""

    def __init__(self, *args: object) -> None:
        self.p = subprocess.Popen([sys.executable, "-m", "tickline.archive.bench", *map(str, args)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)

    def read(self) -> dict[str, Any]:
        assert self.p.stdout is not None
        line = self.p.stdout.readline()
        if not line:
            rc = self.p.wait(timeout=10)
            raise RuntimeError(f"bench child ended without an answer: pid={self.p.pid} exit_status={rc} fault=ours")
        return json.loads(line)  # type: ignore[no-any-return]

    def send(self, line: str) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def close(self) -> None:
        try:
            if self.p.poll() is None:
                self.send("close")
                self.p.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


# ---------------------------------------------------------------- measurements


def dd_write(dir: Path, nbytes: int, block: int, fsync: str) -> float:
    """Seconds ``dd`` takes to write ``nbytes`` in ``block``-byte writes to a new file in ``dir``
    (``conv=fdatasync`` unless the fsync policy is ``none``); the file is removed."""
    target = dir / "dd-probe.tmp"
    count = max(1, nbytes // block)
    cmd = ["dd", "if=/dev/zero", f"of={target}", f"bs={block}", f"count={count}"]
    if fsync != "none":
        cmd.append("conv=fdatasync")
    try:
        t0 = time.monotonic_ns()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        return (time.monotonic_ns() - t0) / 1e9 * nbytes / (count * block)
    except FileNotFoundError:  # no dd: the same loop in Python (os.write is one write(2) per block)
        buf = bytes(block)
        t0 = time.monotonic_ns()
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for _ in range(count):
                os.write(fd, buf)
            if fsync != "none":
                os.fdatasync(fd)
        finally:
            os.close(fd)
        return (time.monotonic_ns() - t0) / 1e9
    finally:
        target.unlink(missing_ok=True)


def _frame(length: int) -> int:
    return (length + 32 + 31) & ~31


class _ThreadCpu:
    """CPU seconds of this process's threads, split into the archive's agent thread and the rest
    but the main thread (the embedded driver's thread and the Aeron clients' conductors).

    Linux only (elsewhere every sample is empty): a thread's CPU clock is read through the
    kernel's per-thread CPU-clock id (``~tid << 3 | CPUCLOCK_PERTHREAD | CPUCLOCK_SCHED``, the
    clock ``pthread_getcpuclockid`` hands out), nanosecond-exact, for any thread of this process
    including C threads Python did not start (they are found in ``/proc/self/task``)."""

    def __init__(self, archive_tid: int | None) -> None:
        self.archive_tid = archive_tid
        self.main_tid = threading.main_thread().native_id
        self.linux = sys.platform.startswith("linux")

    def sample(self) -> dict[int, float]:
        if not self.linux:
            return {}
        out: dict[int, float] = {}
        for name in os.listdir("/proc/self/task"):
            tid = int(name)
            try:
                out[tid] = time.clock_gettime((~tid << 3) | 6)
            except OSError:  # the thread ended between the listing and the read
                pass
        return out

    def between(self, t0: dict[int, float], t1: dict[int, float]) -> dict[str, float]:
        if not t1:
            return {}
        roles = {"archive": 0.0, "driver+clients": 0.0}
        for tid, c1 in t1.items():
            if tid == self.main_tid:
                continue
            roles["archive" if tid == self.archive_tid else "driver+clients"] += c1 - t0.get(tid, 0.0)
        return roles


class _Bench:
    """The archive under test (its own thread and client), a control client, and the measurements."""

    def __init__(self, args: argparse.Namespace, work: Path, aeron_dir: str) -> None:
        from ..transport import Aeron, AgentRunner, BackoffIdleStrategy
        from .client import ArchiveClient
        from .config import ArchiveConfig
        from .daemon import Archive

        self.args = args
        self.work = work
        self.aeron_dir = aeron_dir
        self.stream = 31000
        self.channel = f"aeron:ipc?term-length={args.term_length}"
        self.config = ArchiveConfig(dir=str(work / "archive"), segment_length=args.segment_length, fsync=args.fsync,
                                    control_stream_id=31990, events_stream_id=31991, events_channel="",
                                    record_block_bytes=args.record_block_bytes, replay_block_bytes=args.replay_block_bytes,
                                    replay_connect_timeout_s=30.0)
        self.archive_aeron = Aeron(aeron_dir, timeout=60.0)
        self.archive = Archive(self.config, self.archive_aeron)
        self.errors: list[BaseException] = []
        self.runner = AgentRunner(self.archive, BackoffIdleStrategy(), self.errors.append).start()
        agent_thread = next((t for t in threading.enumerate() if t.name == self.archive.role_name()), None)
        self.cpu = _ThreadCpu(agent_thread.native_id if agent_thread is not None else None)
        self.aeron = Aeron(aeron_dir, timeout=60.0)
        self.client = ArchiveClient.connect(self.aeron, control_stream_id=31990, response_stream_id=31992, timeout=60.0)

    def close(self) -> None:
        self.client.close()
        self.aeron.close()
        self.runner.close()
        self.archive_aeron.close()

    def next_stream(self) -> int:
        self.stream += 1
        return self.stream

    def publish(self, stream: int, length: int, count: int,
                record: bool) -> tuple[dict[str, Any], dict[str, Any], Any, dict[str, float]]:
        """One publisher and one subscriber process on a fresh stream; with ``record``, the archive
        records it too.  Returns (publisher's result, subscriber's result, the recording or None,
        CPU seconds by role from "go" until every byte was published, received and recorded)."""
        sub_id = self.client.start_recording("aeron:ipc", stream) if record else None
        drain = _Proc("drain", self.aeron_dir, "aeron:ipc", stream)
        pub = _Proc("pub", self.aeron_dir, self.channel, stream, length, count)
        try:
            drain.read()
            ready = pub.read()
            d = self.client.wait_for_recording(stream, ready["session_id"], timeout=30.0) if record else None
            t0 = self.cpu.sample()
            drain.send(f"go {ready['session_id']} {count}")
            pub.send("go")
            p = pub.read()
            s = drain.read()
            recording = None
            if record:
                assert d is not None and sub_id is not None
                deadline = time.monotonic() + 600
                while self.client.describe(d.recording_id).stop_position < p["position"]:  # type: ignore[union-attr]
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"recording did not reach the publisher: recording_id={d.recording_id} fault=ours")
                    time.sleep(0.001)
            cpu = self.cpu.between(t0, self.cpu.sample())
            if record:
                assert d is not None and sub_id is not None
                self.client.stop_recording(sub_id)  # drains, syncs (unless fsync=none), saves the catalog
                recorded_ns = time.monotonic_ns()
                recording = (self.client.describe(d.recording_id), recorded_ns)
            if cpu:
                cpu.update(publisher=p["cpu_ns"] / 1e9, subscriber=s["cpu_ns"] / 1e9)
            return p, s, recording, cpu
        finally:
            pub.close()
            drain.close()

    def write(self, length: int, recording_id: int) -> tuple[int, float, int]:
        """The recorder's write path alone: a publisher fills the stream's window (up to ``--bytes``)
        while the recorder waits; then the time the native recorder takes to write all of it to a
        recording's segment files (and fsync, unless the policy is none).  Returns (bytes, seconds, count)."""
        from .. import _aeron

        stream = self.next_stream()
        sub = self.aeron.add_subscription("aeron:ipc", stream)
        pub = _Proc("pub", self.aeron_dir, self.channel, stream, length, 0)
        rec = None
        try:
            sid = pub.read()["session_id"]
            deadline = time.monotonic() + 30
            while sub.image_status(sid) is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"publisher's image never came: stream_id={stream} fault=ours")
                time.sleep(0.001)
            rec = _aeron.Recorder(sub, sid, self.config.dir, recording_id, self.config.segment_length,
                                  self.config.fsync == "segment", checksum=self.config.checksum_type())
            window = rec.term_length // 2  # an IPC publication runs at most this far ahead of its subscriber
            count = max(1, min(self.args.bytes, window) // _frame(length))
            pub.send(f"go {count}")
            end = pub.read()["position"]
            t0 = time.monotonic_ns()
            while rec.position < end:
                rec.record(self.config.record_block_bytes)
            if self.config.fsync != "none":
                rec.sync()
            seconds = (time.monotonic_ns() - t0) / 1e9
            return end - rec.start_position, seconds, count
        finally:
            if rec is not None:
                rec.close()
            sub.close()
            pub.close()
            for f in Path(self.config.dir).glob(f"{recording_id}-*.rec"):
                f.unlink()

    def replay(self, recording: Any, count: int) -> tuple[dict[str, Any], dict[str, float]]:
        """The subscriber loop reading a replay of ``recording``: (its result, CPU seconds by role).
        The subscriber polls before the replay is requested, as it polls before the publisher starts
        in the live case: no part of the replay is waiting for it when it starts."""
        stream = self.next_stream()
        drain = _Proc("drain", self.aeron_dir, "aeron:ipc", stream)
        try:
            drain.read()
            drain.send(f"go any {count}")
            t0 = self.cpu.sample()
            self.client.replay(recording.recording_id, channel="aeron:ipc", stream_id=stream)
            # The driver's and clients' threads from the answer on: before it the driver made the
            # replay publication's log (allocated up front), which the live case's publisher
            # did before its "go".  The archive's thread from the request on (it may replay
            # before the answer arrives).
            t0_driver = self.cpu.sample()
            r = drain.read()
            t1 = self.cpu.sample()
            cpu = self.cpu.between(t0, t1)
            if cpu:
                cpu["driver+clients"] = self.cpu.between(t0_driver, t1)["driver+clients"]
                cpu["subscriber"] = r["cpu_ns"] / 1e9
            return r, cpu
        finally:
            drain.close()

    def merge(self, nbytes: int) -> tuple[float, int]:
        """Seconds from the ReplayMerge request to merged, over a recording of ``nbytes``; messages delivered."""
        from .replay_merge import ReplayMerge

        stream = self.next_stream()
        length = 1024
        count = max(1, nbytes // _frame(length))
        sub_id = self.client.start_recording("aeron:ipc", stream)
        drain = _Proc("drain", self.aeron_dir, "aeron:ipc", stream)  # the publisher's live subscriber
        pub = _Proc("pub", self.aeron_dir, self.channel, stream, length, count)
        try:
            drain.read()
            ready = pub.read()
            d = self.client.wait_for_recording(stream, ready["session_id"], timeout=30.0)
            drain.send(f"go {ready['session_id']} {count}")
            pub.send("go")
            p = pub.read()
            drain.read()
            deadline = time.monotonic() + 600
            while self.client.describe(d.recording_id).stop_position < p["position"]:  # type: ignore[union-attr]
                if time.monotonic() > deadline:
                    raise RuntimeError(f"recording did not reach the publisher: recording_id={d.recording_id} fault=ours")
                time.sleep(0.005)
            got = [0]

            def on_message(_m: bytes, _position: int) -> None:
                got[0] += 1

            t0 = time.monotonic_ns()
            m = ReplayMerge(self.aeron, self.client, d.recording_id, "aeron:ipc", stream, on_message,
                            replay_stream_id=self.next_stream())
            try:
                while not m.is_merged:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"replay-merge did not merge: recording_id={d.recording_id} state={m.state} fault=ours")
                    m.poll(1000)
                elapsed = (time.monotonic_ns() - t0) / 1e9
            finally:
                m.close()
            if got[0] != count:
                raise RuntimeError(f"replay-merge delivered the wrong count: got={got[0]} expected={count} fault=ours")
            return elapsed, got[0]
        finally:
            pub.close()
            drain.close()
            self.client.stop_recording(sub_id)
            self.client.purge_recording(d.recording_id)


def _single(case: benchkit.Case, value_ns: float, throughput: float) -> None:
    case.histograms.append(benchkit.histogram_of([round(value_ns)]))
    case.run_throughputs.append(throughput)
    case.throughput = statistics.median(case.run_throughputs)


def cmd_bench(args: argparse.Namespace) -> int:
    from ..transport import MediaDriver

    for name in ("bytes", "merge_bytes"):
        if getattr(args, name) < 64 * 1024:
            raise benchkit.BenchInputError(f"bench size too small: option=--{name.replace('_', '-')} "
                                           f"value={getattr(args, name)} min=65536 fault=user")
    if args.runs < 1 or any(not 1 <= s <= 8192 for s in args.sizes):
        raise benchkit.BenchInputError(f"--runs must be >= 1 and --sizes in [1, 8192]: runs={args.runs} sizes={args.sizes} fault=user")
    parent = Path(args.dir)
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise benchkit.BenchInputError(f"bench directory is not a writable directory: option=--dir path={parent} fault=user")
    need = args.bytes + args.merge_bytes + 64 * MiB
    if shutil.disk_usage(parent).free < 2 * need:
        raise benchkit.BenchInputError(f"not enough free space for the bench: dir={parent} needed={2 * need} fault=user")
    work = Path(tempfile.mkdtemp(prefix="tickline-bench-archive-", dir=parent))
    # Log buffers allocated when made, not on first write: a sparse term's first pass
    # takes a page fault per 4 KiB, and every measured run here would be a first pass.
    driver = None if args.aeron_dir else MediaDriver.embedded(options={"aeron.term.buffer.sparse.file": "false"})
    aeron_dir = args.aeron_dir or driver.dir  # type: ignore[union-attr]
    report = benchkit.Report("archive", reference=BASELINE)
    report.extra.update({"dir": str(parent), "fsync": args.fsync, "record_block_bytes": args.record_block_bytes,
                         "replay_block_bytes": args.replay_block_bytes, "bytes": args.bytes, "merge_bytes": args.merge_bytes,
                         "segment_length": args.segment_length,
                         "targets": {k: {"sizes": v[0], "target": v[1]} for k, v in TARGETS.items()}})
    ratios: dict[str, list[float]] = {}
    cpu_runs: dict[str, dict[str, list[float]]] = {}
    bench = _Bench(args, work, aeron_dir)
    try:
        # One unmeasured round first, of every case (a few MiB each): the first measured case
        # would otherwise be the only one paying the archive's, the driver's and the page
        # cache's first-time costs.
        for size in args.sizes:
            warm = max(1, min(args.bytes, 8 * MiB) // _frame(size))
            bench.publish(bench.next_stream(), size, warm, record=False)
            d = bench.publish(bench.next_stream(), size, warm, record=True)[2][0]
            bench.replay(d, warm)
            bench.client.purge_recording(d.recording_id)
        for run in range(args.runs):
            for size in args.sizes:
                count = max(1, args.bytes // _frame(size))
                tag = f"{size}B"
                # Recording off (the publisher's and the live subscriber's rates) and on, in turn
                # first and second from run to run: a drift in the machine (other load, writeback)
                # then weighs on both sides alike.
                results = {}
                for record in ((False, True) if run % 2 == 0 else (True, False)):
                    results[record] = bench.publish(bench.next_stream(), size, count, record=record)
                p, s, _, off_cpu = results[False]
                off_rate = p["sent"] / ((p["end_ns"] - p["start_ns"]) / 1e9)
                live_rate = s["fragments"] / ((s["end_ns"] - s["first_ns"]) / 1e9)
                p2, _s2, rec, on_cpu = results[True]
                on_rate = p2["sent"] / ((p2["end_ns"] - p2["start_ns"]) / 1e9)
                d, recorded_ns = rec
                e2e_bytes = d.stop_position - d.start_position
                e2e_s = (recorded_ns - p2["start_ns"]) / 1e9
                # the recorder's write path, with the data there, against dd writing as much
                rec_bytes, rec_s, _ = bench.write(size, 1_000_000 + run * 100 + size % 97)
                dd_s = dd_write(Path(bench.config.dir), rec_bytes, args.record_block_bytes, args.fsync)
                # replay of that recording, from page cache, to the same subscriber loop
                r, replay_cpu = bench.replay(d, count)
                for who, got in (("live subscriber", s["fragments"]), ("replay subscriber", r["fragments"]),
                                 ("publisher", p["sent"]), ("publisher (recording on)", p2["sent"])):
                    if got != count:
                        raise RuntimeError(f"bench lost messages: who={who} size={size} got={got} expected={count} fault=ours")
                replay_s = (r["end_ns"] - r["first_ns"]) / 1e9
                replay_rate = r["fragments"] / replay_s
                bench.client.purge_recording(d.recording_id)

                g = f"publisher {tag}"
                _single(report.case(f"pub {tag} rec off", label=BASELINE, group=g), 1e9 / off_rate, off_rate)
                _single(report.case(f"pub {tag} rec on", label=ARCHIVE, group=g), 1e9 / on_rate, on_rate)
                g = f"write {tag} (per MiB)"
                _single(report.case(f"dd write {tag}", label=BASELINE, group=g, extra={"unit": "time per MiB"}),
                        dd_s * 1e9 * MiB / rec_bytes, rec_bytes / dd_s)
                _single(report.case(f"record write {tag}", label=ARCHIVE, group=g, extra={"unit": "time per MiB"}),
                        rec_s * 1e9 * MiB / rec_bytes, rec_bytes / rec_s)
                # the recording of the live publication, end to end (bounded by the publisher's rate)
                _single(report.case(f"record live {tag}", label="live", group=g, extra={"unit": "time per MiB"}),
                        e2e_s * 1e9 * MiB / e2e_bytes, e2e_bytes / e2e_s)
                g = f"subscriber {tag}"
                _single(report.case(f"sub {tag} live", label=BASELINE, group=g), 1e9 / live_rate, live_rate)
                _single(report.case(f"sub {tag} replay", label=ARCHIVE, group=g,
                                    extra={"MB_per_s": []}), 1e9 / replay_rate, replay_rate)
                report.case(f"sub {tag} replay").extra["MB_per_s"].append(round(r["bytes"] / replay_s / 1e6, 1))
                # CPU seconds per GiB of stream, by role and case (where each byte's work goes)
                gib = count * _frame(size) / (1 << 30)
                for case, cpu in ((f"pub {tag} rec off", off_cpu), (f"pub {tag} rec on", on_cpu), (f"sub {tag} replay", replay_cpu)):
                    for role, seconds in cpu.items():
                        cpu_runs.setdefault(case, {}).setdefault(role, []).append(seconds / gib)
                for key, value in ((f"publisher_on_off_{size}", on_rate / off_rate),
                                   (f"record_write_vs_dd_{size}", dd_s / rec_s),
                                   (f"replay_vs_live_{size}", replay_rate / live_rate)):
                    ratios.setdefault(key, []).append(value)
            elapsed, delivered = bench.merge(args.merge_bytes)
            _single(report.case("replay-merge", label=ARCHIVE, group="replay-merge",
                                extra={"recording_bytes": args.merge_bytes, "messages": delivered}), elapsed * 1e9,
                    args.merge_bytes / elapsed)
        if bench.errors:
            raise RuntimeError(f"archive failed during the bench: error={bench.errors[0]!r} fault=ours")
    finally:
        bench.close()
        if driver is not None:
            driver.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report.extra["ratios"] = {k: round(statistics.median(v), 3) for k, v in ratios.items()}
    report.extra["ratio_runs"] = {k: [round(x, 3) for x in v] for k, v in ratios.items()}
    report.extra["cpu_s_per_gib"] = {case: {role: round(statistics.median(v), 3) for role, v in roles.items()}
                                     for case, roles in cpu_runs.items()}
    benchkit.emit(report, args)
    print("ratios (median of the runs' ratios, then each run's; throughput, higher is better):")
    for key, value in report.extra["ratios"].items():
        prefix, size = key.rsplit("_", 1)
        sizes, target = TARGETS.get(prefix, ((), None))
        if sizes is not None and int(size) not in sizes:
            target = None
        verdict = "" if target is None else f"  target >= {target:.2f}: {'met' if value >= target else 'MISSED'}"
        runs = " ".join(f"{x:.2f}" for x in ratios[key])
        print(f"  {key:<28}{value:6.2f}  (runs {runs}){verdict}")
    if cpu_runs:
        roles = ("publisher", "subscriber", "archive", "driver+clients")
        print("CPU seconds per GiB of stream (median of the runs; archive: its agent thread; "
              "driver+clients: this process's other threads):")
        print(f"  {'case':<22}" + "".join(f"{r:>16}" for r in roles))
        for case, by_role in report.extra["cpu_s_per_gib"].items():
            print(f"  {case:<22}" + "".join(f"{by_role[r]:16.3f}" if r in by_role else f"{'-':>16}" for r in roles))
    return 0


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from ..transport.uri import parse_size

    p = bench_subparsers.add_parser("archive", help="archive: recording and replay throughput, replay-merge time (ratios in one run)")
    p.add_argument("--dir", default=tempfile.gettempdir(), help="where recordings and dd's probe file are written")
    p.add_argument("--aeron-dir", help="a running media driver (default: an embedded one)")
    p.add_argument("--bytes", type=parse_size, default=256 * MiB, help="stream bytes per record/replay measurement")
    p.add_argument("--merge-bytes", type=parse_size, default=1 << 30, help="size of the replay-merge recording")
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 1024], help="message sizes (bytes)")
    p.add_argument("--runs", type=int, default=3, help="repeat every case; figures are medians")
    p.add_argument("--fsync", default="stop", help="the archive's fsync policy (dd syncs once at the end unless none)")
    p.add_argument("--segment-length", type=parse_size, default=64 * MiB, help="bytes per segment file of the recordings")
    p.add_argument("--record-block-bytes", type=parse_size, default=1 * MiB, help="the recorder's largest write (dd's bs)")
    p.add_argument("--replay-block-bytes", type=parse_size, default=64 * 1024, help="most bytes a replay offers per block")
    p.add_argument("--term-length", type=parse_size, default=64 * MiB,
                   help="term length of the measured streams (half of it bounds a write measurement)")
    p.add_argument("--keep", action="store_true", help="keep the bench's directory")
    benchkit.add_output_args(p)
    p.set_defaults(func=lambda a: benchkit.run_guarded("tickline bench archive", cmd_bench, a))


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
