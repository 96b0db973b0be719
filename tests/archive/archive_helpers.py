"""Helpers of the archive tests: messages, publishing, waiting, collecting a replay."""

from __future__ import annotations

import time

from tickline.archive import ArchiveClient, RecordingState


def message(i: int) -> bytes:
    # Sizes vary (and some exceed the IPC MTU's payload, so fragmented messages are recorded too).
    size = 8 + (i * 37) % 300 + (3000 if i % 97 == 0 else 0)
    return i.to_bytes(4, "little") + bytes([i % 251]) * (size - 4)


def publish(pub, messages, deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    for m in messages:
        while pub.offer(m) < 0:
            assert time.monotonic() < deadline, "publication back pressured for too long"
            time.sleep(0.0005)


def wait_until(cond, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def collect(sub, session_id: int, count: int, timeout: float = 10.0) -> list[bytes]:
    """At least ``count`` messages of the image (the last poll may bring more)."""
    from tickline.transport import FragmentAssembler

    got: list[bytes] = []
    asm = FragmentAssembler(lambda buf, hdr: got.append(bytes(buf)))
    deadline = time.monotonic() + timeout
    while len(got) < count:
        assert time.monotonic() < deadline, f"replay delivered {len(got)} of {count} messages"
        try:
            if sub.poll_image(session_id, asm, 100) == 0:
                time.sleep(0.001)
        except LookupError:
            time.sleep(0.001)
    return got


def live_recording(aeron, client: ArchiveClient, stream_id: int, channel: str = "aeron:ipc"):
    """Record IPC stream ``stream_id`` and add an exclusive publication on ``channel`` (an IPC
    channel) ``stream_id``, once the archive is recording it: (subscription id, publication,
    descriptor)."""
    sub_id = client.start_recording("aeron:ipc", stream_id)
    pub = aeron.add_exclusive_publication(channel, stream_id)
    return sub_id, pub, client.wait_for_recording(stream_id, pub.session_id)


def recorded_to(client: ArchiveClient, recording_id: int, pub) -> int:
    """``pub``'s position, once recording ``recording_id`` has all up to there."""
    end = pub.position
    wait_until(lambda: client.describe(recording_id).stop_position == end, what="recording to catch up")
    return end


def record_stopped(aeron, client: ArchiveClient, stream_id: int, messages: list[bytes], channel: str = "aeron:ipc"):
    """Record ``messages`` published on ``channel`` (an IPC channel) ``stream_id`` and stop the
    recording (the publication closes)."""
    sub_id, pub, d = live_recording(aeron, client, stream_id, channel)
    publish(pub, messages)
    end = recorded_to(client, d.recording_id, pub)
    client.stop_recording(sub_id)
    pub.close()
    d = client.describe(d.recording_id)
    assert d.state == RecordingState.STOPPED and d.stop_position == end
    return d


def direct_replayer(aeron, archive_dir, d, stream_id: int):
    """A ``Replayer`` of recording ``d`` (a descriptor) read from ``archive_dir``, onto a new exclusive
    IPC publication of the recording's term geometry on ``stream_id``, which a new subscription
    has connected to: (publication, subscription, replayer)."""
    from tickline import _aeron

    pub = aeron.add_exclusive_publication(
        f"aeron:ipc?init-term-id={d.initial_term_id}|term-id={d.initial_term_id}|term-offset=0"
        f"|term-length={d.term_buffer_length}|mtu={d.mtu_length}", stream_id)
    sub = aeron.add_subscription("aeron:ipc", stream_id)
    wait_until(lambda: pub.is_connected, what="connect")
    r = _aeron.Replayer(pub, str(archive_dir), d.recording_id, d.start_position, d.term_buffer_length,
                        d.segment_file_length, d.initial_term_id, d.session_id, d.mtu_length, 0)
    return pub, sub, r


def collect_to_end(sub, session_id: int, timeout: float = 30.0) -> tuple[list[bytes], int | None]:
    """Every message of the image until it ends (end of stream, or gone); and its last position seen."""
    from tickline.transport import FragmentAssembler

    got: list[bytes] = []
    asm = FragmentAssembler(lambda buf, hdr: got.append(bytes(buf)))
    deadline = time.monotonic() + timeout
    last_position = None
    while True:
        st = sub.image_status(session_id)
        if st is None:
            if last_position is not None:
                return got, last_position
        else:
            last_position = st.position
            if sub.poll_image(session_id, asm, 100) > 0:
                continue
            if st.is_end_of_stream:
                return got, last_position
        assert time.monotonic() < deadline, f"image did not end: session_id={session_id} position={last_position}"
        time.sleep(0.001)


class FakeClock:
    """Monotonic seconds that move only when a test moves them."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ArchiveThread:
    """An already started Archive's duty cycle on a thread (for tests that drive its clock)."""

    def __init__(self, archive) -> None:
        import threading

        self.archive = archive
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.archive.do_work() == 0:
                time.sleep(0.0005)

    def __enter__(self) -> "ArchiveThread":
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class RunningArchive:
    """An archive agent on its own thread, with its own Aeron client."""

    def __init__(self, driver_dir: str, dir: Path, **options: object) -> None:
        from tickline.archive import Archive, ArchiveConfig
        from tickline.transport import Aeron, AgentRunner, SleepingIdleStrategy

        self.aeron = Aeron(driver_dir, timeout=5.0)
        self.config = ArchiveConfig(dir=str(dir), **options)  # type: ignore[arg-type]
        self.archive = Archive(self.config, self.aeron)
        self.errors: list[BaseException] = []
        self.runner = AgentRunner(self.archive, SleepingIdleStrategy(200_000), self.errors.append).start()

    def close(self) -> None:
        self.runner.close()
        self.aeron.close()


def start_archive_process(procs, driver_dir: str, dir, **options: str):
    """``tickline archive run`` as deployed, from the ``[archive]`` section of a topology file
    (``options``: more keys of it, as TOML strings); returns once it says it is ready."""
    import subprocess
    import sys

    keys = {"segment_length": "128k", **options}
    topology = dir.parent / "topology.toml"
    topology.write_text(f'[archive]\ndir = "{dir}"\naeron_dir = "{driver_dir}"\n'
                        + "".join(f'{k} = "{v}"\n' for k, v in keys.items()))
    p = procs.start([sys.executable, "-m", "tickline", "archive", "run", "--config", str(topology)],
                    stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while True:
        line = p.stderr.readline()
        assert line, f"archive exited: rc={p.poll()}"
        if " INFO tickline.archive ready " in line:
            return p
        assert time.monotonic() < deadline, "archive did not start"
