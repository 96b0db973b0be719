"""Build and drive qfpeer, the QuickFIX counterparty (C++ against Debian's libquickfix-dev).

The binary is built once per source hash into ``TICKLINE_QFPEER_BUILD_DIR``
(default ``<repo>/build/qfpeer``) and reused by later runs.
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

from tickline.fix_gateway.dictionary import spec_dir as dictionary_dir

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "qfpeer.cpp"
REPO = HERE.parents[2]


def build() -> Path:
    src = SOURCE.read_bytes()
    tag = hashlib.sha256(src).hexdigest()[:12]
    out_dir = Path(os.environ.get("TICKLINE_QFPEER_BUILD_DIR") or REPO / "build" / "qfpeer")
    binary = out_dir / f"qfpeer-{tag}"
    if binary.exists():
        return binary
    if shutil.which("pkg-config") is None or shutil.which("g++") is None:
        raise RuntimeError("cannot build qfpeer: fault=environment missing=g++/pkg-config install='apt-get install g++ pkg-config libquickfix-dev'")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "quickfix"], capture_output=True, text=True)
    if flags.returncode != 0:
        raise RuntimeError("cannot build qfpeer: fault=environment missing=quickfix install='apt-get install libquickfix-dev'")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".qfpeer-{tag}.{os.getpid()}"
    cmd = ["g++", "-std=c++14", "-O1", "-o", str(tmp), str(SOURCE), *flags.stdout.split(), "-lpthread"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"cannot build qfpeer: fault=local cmd={' '.join(cmd)}\n{r.stderr[-4000:]}")
    os.replace(tmp, binary)
    return binary


def settings(kind: str, port: int, workdir: Path, begin: str = "FIX.4.4", sender: str = "QF", target: str = "GW",
             heartbeat_s: int = 30, reset_on_logon: bool = False, username: str = "", password: str = "") -> str:
    spec_dir = dictionary_dir()  # the same dictionaries the gateway validates against
    lines = [
        "[DEFAULT]",
        f"ConnectionType={kind}",
        "ReconnectInterval=1",
        f"FileStorePath={workdir / 'qfstore'}",
        f"FileLogPath={workdir / 'qflog'}",
        "StartTime=00:00:00",
        "EndTime=00:00:00",
        f"HeartBtInt={heartbeat_s}",
        "UseDataDictionary=Y",
        f"ResetOnLogon={'Y' if reset_on_logon else 'N'}",
        "[SESSION]",
        f"BeginString={begin}",
        f"SenderCompID={sender}",
        f"TargetCompID={target}",
    ]
    if begin == "FIXT.1.1":
        lines += [f"TransportDataDictionary={spec_dir / 'FIXT11.xml'}", f"AppDataDictionary={spec_dir / 'FIX50SP2.xml'}",
                  "DefaultApplVerID=FIX.5.0SP2"]
    else:
        lines += [f"DataDictionary={spec_dir / (begin.replace('.', '') + '.xml')}"]
    if username:  # sent on the Logon by qfpeer's toAdmin
        lines += [f"Username={username}", f"Password={password}"]
    if kind == "initiator":
        lines += ["SocketConnectHost=127.0.0.1", f"SocketConnectPort={port}"]
    else:
        lines += [f"SocketAcceptPort={port}"]
    return "\n".join(lines) + "\n"


class QfPeer:
    """A running qfpeer process: send commands, wait for output lines."""

    def __init__(self, binary: Path, config_text: str, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        cfg = workdir / "qfpeer.cfg"
        cfg.write_text(config_text)
        self.lines: list[str] = []
        self._q: queue.Queue[str] = queue.Queue()
        self.proc = subprocess.Popen([str(binary), str(cfg)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._seen = 0

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))

    def _pull(self) -> None:
        while True:
            try:
                self.lines.append(self._q.get_nowait())
            except queue.Empty:
                return

    def cmd(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def wait_for(self, pattern: str, timeout: float = 30.0, after: int | None = None) -> str:
        """First output line (from index ``after``, default: any) matching ``pattern``."""
        rx = re.compile(pattern)
        start = 0 if after is None else after
        deadline = time.monotonic() + timeout
        while True:
            self._pull()
            for line in self.lines[start:]:
                if rx.search(line):
                    return line
            if time.monotonic() > deadline or self.proc.poll() is not None and self._q.empty():
                self._pull()
                tail = "\n".join(self.lines[-30:])
                raise AssertionError(f"qfpeer: no line matching {pattern!r} within {timeout}s; last lines:\n{tail}")
            # block until the next line (not a sleep loop: a thread waking every few ms takes the GIL
            # from whatever else runs in this process, e.g. a gateway agent under benchmark)
            start = max(start, len(self.lines))
            try:
                self.lines.append(self._q.get(timeout=min(0.5, max(0.001, deadline - time.monotonic()))))
            except queue.Empty:
                pass

    def mark(self) -> int:
        self._pull()
        return len(self.lines)

    def seqnums(self) -> tuple[int, int]:
        m = self.mark()
        self.cmd("seqnums")
        line = self.wait_for(r"^SEQNUMS ", after=m)
        g = re.search(r"sender=(\d+) target=(\d+)", line)
        assert g is not None
        return int(g.group(1)), int(g.group(2))

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.cmd("quit")
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._reader.join(timeout=5)
