"""Data-driven consensus scenarios: tests/testdata/cluster/*.txt.

Each file is a sequence of blocks::

    command args...
    ----
    expected output

separated by blank lines; ``#`` starts a comment line.  Run with
``TICKLINE_REWRITE=1`` to rewrite the expected outputs from what the code
does now (then read the diff before committing it).

Commands: ``cluster n=3 seed=0``, ``elect``, ``propose M PAYLOAD``,
``run MS``, ``isolate M``, ``cut A>B`` (one way), ``heal``, ``crash M``,
``restart M``, ``transfer``, ``compact M``, ``status``, ``applied M``,
``stored M`` (what M persisted); a member
M is an id, ``leader`` or ``follower`` (the lowest-id live non-leader).
"""

import os
import pathlib

import pytest

from cluster_harness import Net
from tickline.cluster.messages import Snapshot

DATA = pathlib.Path(__file__).resolve().parent.parent / "testdata" / "cluster"
FILES = sorted(DATA.glob("*.txt"))


def parse(text):
    blocks = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.startswith("#"):
            i += 1
            continue
        cmd = line
        assert lines[i + 1] == "----", f"file format: expected ---- after command at line {i + 1}"
        i += 2
        out = []
        while i < len(lines) and lines[i] != "":
            out.append(lines[i])
            i += 1
        blocks.append((cmd, "\n".join(out)))
    return blocks


class Runner:
    def __init__(self):
        self.net = None

    def member(self, arg):
        """A member id, or ``leader``, or ``follower`` (the lowest-id live non-leader)."""
        if arg == "leader":
            return self.net.leader()
        if arg == "follower":
            return min(i for i in self.net.ids if i not in self.net.down and i != self.net.leader())
        return int(arg)

    def run(self, cmd):
        words = cmd.split()
        op, args = words[0], words[1:]
        net = self.net
        if op == "cluster":
            kw = dict(a.split("=") for a in args)
            self.net = Net(int(kw.get("n", 3)), seed=int(kw.get("seed", 0)))
            return "ok"
        if op == "elect":
            leader = net.elect()
            return f"leader={leader} term={net.cores[leader].term}"
        if op == "propose":
            m = self.member(args[0])
            e = net.propose(m, args[1].encode())
            return f"position={e.position} end={e.end} term={e.term}"
        if op == "run":
            net.advance_time(net.now + int(args[0]))
            return f"now={net.now}"
        if op == "isolate":
            net.isolate(self.member(args[0]))
            return "ok"
        if op == "cut":
            a, b = args[0].split(">")
            net.cut.add((self.member(a), self.member(b)))
            return "ok"
        if op == "heal":
            net.heal()
            return "ok"
        if op == "crash":
            net.crash(self.member(args[0]))
            return "ok"
        if op == "restart":
            net.restart(self.member(args[0]))
            return "ok"
        if op == "transfer":
            m = net.leader()
            target = net.cores[m].transfer_leadership()
            net.flush()
            net.deliver()
            return f"from={m} to={target} leader_now={net.leader()}"
        if op == "compact":
            c = net.cores[self.member(args[0])]
            c.compact(Snapshot(c.applied_position, c.term_at(c.applied_position), b"snap"))
            return f"base={c.base_position}"
        if op == "status":
            rows = []
            for i in net.ids:
                if i in net.down:
                    rows.append(f"{i}: down")
                    continue
                c = net.cores[i]
                rows.append(f"{i}: {c.role.value} term={c.term} leader={c.leader} log={c.last_position()} commit={c.commit_position}")
            return "\n".join(rows)
        if op == "stored":
            st = net.stores[self.member(args[0])]
            snap = st.snapshot.position if st.snapshot else None
            return f"snapshot={snap} entries={len(st.entries)} term={st.hard_state.term} vote={st.hard_state.voted_for}"
        if op == "applied":
            return " ".join(p.decode() for p in net.payloads(int(args[0]))) or "(none)"
        raise AssertionError(f"unknown command={op}")


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario(path):
    text = path.read_text()
    blocks = parse(text)
    runner = Runner()
    actual = [(cmd, runner.run(cmd)) for cmd, _ in blocks]
    if os.environ.get("TICKLINE_REWRITE"):
        comments = [l for l in text.split("\n") if l.startswith("#")]
        body = "\n\n".join(f"{cmd}\n----\n{out}" for cmd, out in actual)
        path.write_text(("\n".join(comments) + "\n\n" if comments else "") + body + "\n")
        return
    for (cmd, expected), (_, got) in zip(blocks, actual):
        assert got == expected, f"{path.name}: command {cmd!r}"


def test_there_are_scenarios():
    assert len(FILES) >= 4
