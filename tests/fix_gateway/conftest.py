import os
import socket
import subprocess
import sys
import time

import pytest

from tickline.transport.agent import AgentInvoker


class Loop:
    """Drives agents on the test's thread; every wait is bounded in cycles and wall time."""

    def __init__(self):
        self.invokers = []

    def add(self, agent):
        inv = AgentInvoker(agent, error_handler=self._raise)
        inv.start()
        self.invokers.append(inv)
        return agent

    @staticmethod
    def _raise(e):
        raise e

    def run_until(self, cond, timeout=20.0, max_cycles=2_000_000, what="condition"):
        deadline = time.monotonic() + timeout
        for _ in range(max_cycles):
            if cond():
                return
            work = sum(inv.invoke() for inv in self.invokers)
            if not work:
                time.sleep(0.0005)
            if time.monotonic() > deadline:
                break
        if not cond():
            raise AssertionError(f"timed out waiting for {what}")

    def run_for(self, cycles):
        for _ in range(cycles):
            if not sum(inv.invoke() for inv in self.invokers):
                time.sleep(0.0005)

    def close(self):
        for inv in reversed(self.invokers):
            inv.close()
        self.invokers.clear()


@pytest.fixture
def loop():
    lp = Loop()
    yield lp
    lp.close()


class RawClient:
    """A plain blocking TCP client for bad-input tests."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setblocking(False)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def poll(self):
        """Read what is there; returns False once the peer has closed."""
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not data:
            return False
        self.buf += data
        return True

    def close(self):
        self.sock.close()


@pytest.fixture
def raw_clients():
    clients = []

    def make(port):
        c = RawClient(port)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def daemon(tmp_path):
    """Starts ``tickline fix-gateway --config CFG`` processes; kills what is left at the end."""
    procs = []

    def start(cfg, *extra, env=None):
        p = subprocess.Popen([sys.executable, "-P", "-m", "tickline.fix_gateway.cli", "fix-gateway", "--config",
                              str(cfg), *extra], stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
        procs.append(p)
        line = p.stderr.readline()
        assert "tickline fix-gateway: running sessions=" in line, line
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)
        p.stderr.close()
