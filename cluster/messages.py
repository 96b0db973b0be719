"""What flows into and out of the consensus core: log entries, member-to-member
messages, persisted state and the :class:`Ready` batch.

Log positions are byte offsets, as in Aeron Cluster: an entry occupies
``ENTRY_HEADER_LENGTH + len(payload)`` bytes of the log starting at
``position``, and ``end`` is the position of the next entry.  Append and
commit positions are always entry ends (boundaries).  All types are frozen.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = [
    "ENTRY_HEADER_LENGTH",
    "EntryKind",
    "KIND_NOOP",
    "KIND_SESSION_OPEN",
    "KIND_SESSION_CLOSE",
    "KIND_MESSAGE",
    "KIND_TIMER",
    "KIND_ACTION",
    "Entry",
    "HardState",
    "Snapshot",
    "RequestVote",
    "VoteResponse",
    "AppendRequest",
    "AppendResponse",
    "InstallSnapshot",
    "InstallSnapshotResponse",
    "TimeoutNow",
    "Message",
    "Role",
    "RoleChange",
    "Ready",
]

_T = TypeVar("_T")


def fast_init(cls: type[_T]) -> type[_T]:
    """Give a frozen, slotted dataclass an ``__init__`` that writes each field
    through its slot's descriptor instead of ``object.__setattr__``: about half
    the cost, for the types made once or more per order on every member.  Same
    parameters and defaults; frozenness, eq, repr and hash stay the dataclass's."""
    ns: dict[str, object] = {}
    params, body = [], []
    for i, f in enumerate(dataclasses.fields(cls)):  # type: ignore[arg-type]
        if not f.init or f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"fast_init: {cls.__name__}.{f.name} needs the dataclass __init__")
        ns[f"_set{i}"] = cls.__dict__[f.name].__set__
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            ns[f"_default{i}"] = f.default
            params.append(f"{f.name}=_default{i}")
        body.append(f"    _set{i}(self, {f.name})")
    exec(f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body), ns)
    init = ns["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"  # type: ignore[attr-defined]
    cls.__init__ = init  # type: ignore[misc]
    return cls


# length u32, crc32 u32, term i64, timestamp i64, kind u32: see log.py for the framing.
ENTRY_HEADER_LENGTH = 28


class EntryKind(enum.IntEnum):
    NOOP = 0  # appended by each new leader so earlier-term entries can commit (Raft §5.4.2)
    SESSION_OPEN = 1
    SESSION_CLOSE = 2
    MESSAGE = 3
    TIMER = 4
    ACTION = 5  # a cluster action (suspend, resume, shutdown) every member applies at the same position


# The kinds as plain module globals for per-entry code: a class attribute
# lookup on an Enum costs about ten times a global's (~67 ns against ~6).
KIND_NOOP, KIND_SESSION_OPEN, KIND_SESSION_CLOSE, KIND_MESSAGE, KIND_TIMER, KIND_ACTION = (
    EntryKind.NOOP, EntryKind.SESSION_OPEN, EntryKind.SESSION_CLOSE, EntryKind.MESSAGE, EntryKind.TIMER, EntryKind.ACTION)


@dataclass(frozen=True, slots=True)
class Entry:
    position: int
    term: int
    timestamp: int  # the leader's cluster time when appended: the only clock service code sees
    kind: int
    payload: bytes = b""
    end: int = field(init=False, compare=False, repr=False)



def _entry_init(self: Entry, position: int, term: int, timestamp: int, kind: int, payload: bytes = b"") -> None:
    # One Entry per order on every member: the dataclass-generated __init__ of a
    # frozen class goes through object.__setattr__ per field (plus one for
    # ``end``); writing through the slots' own descriptors is about half the
    # cost.  Frozenness for everyone else, eq, repr and hash stay the dataclass's.
    _set_position(self, position)
    _set_term(self, term)
    _set_timestamp(self, timestamp)
    _set_kind(self, kind)
    _set_payload(self, payload)
    _set_end(self, position + ENTRY_HEADER_LENGTH + len(payload))


_set_position, _set_term, _set_timestamp, _set_kind, _set_payload, _set_end = (
    Entry.__dict__[name].__set__ for name in ("position", "term", "timestamp", "kind", "payload", "end"))
Entry.__init__ = _entry_init  # type: ignore[method-assign]


@fast_init
@dataclass(frozen=True, slots=True)
class HardState:
    """What must survive a crash for Raft to stay safe (term and vote) plus the
    commit position, which may be written lazily: any value once true stays true."""

    term: int = 0
    voted_for: int | None = None
    commit_position: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Service state as of ``position`` (an entry end), taken in ``term``."""

    position: int
    term: int
    data: bytes


@dataclass(frozen=True, slots=True)
class RequestVote:
    src: int
    dst: int
    term: int  # for a pre-vote: the term the candidate would campaign in
    last_term: int
    last_position: int
    pre_vote: bool = False
    transfer: bool = False  # sent after TimeoutNow: voters skip the leader-lease check


@dataclass(frozen=True, slots=True)
class VoteResponse:
    src: int
    dst: int
    term: int
    granted: bool
    pre_vote: bool = False


@fast_init
@dataclass(frozen=True, slots=True)
class AppendRequest:
    src: int
    dst: int
    term: int
    prev_position: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit_position: int


@fast_init
@dataclass(frozen=True, slots=True)
class AppendResponse:
    src: int
    dst: int
    term: int
    success: bool
    # success: end of the prefix now known to match the leader's log (the append position);
    # failure: a hint where the leader should retry from.
    position: int
    rejected_prev: int = -1


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """One chunk of the leader's snapshot: bytes ``[offset, offset + len(data))``
    of a snapshot at ``position`` taken in ``snapshot_term``, ``length`` bytes in
    all, whose CRC-32 is ``checksum``.  The four together name the snapshot, so a
    follower can resume a transfer under a new leader that holds the same one.
    The chunk ending at ``length`` completes it (a zero-length snapshot is one
    empty chunk)."""

    src: int
    dst: int
    term: int
    position: int
    snapshot_term: int
    length: int
    checksum: int
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class InstallSnapshotResponse:
    """Follower -> leader during a snapshot transfer: it holds the first
    ``offset`` bytes of the snapshot at ``position`` and needs the rest from
    there (0: start again).  Completion is answered with an AppendResponse at
    ``position`` instead, as any other catch-up."""

    src: int
    dst: int
    term: int
    position: int
    offset: int


@dataclass(frozen=True, slots=True)
class TimeoutNow:
    src: int
    dst: int
    term: int


Message = RequestVote | VoteResponse | AppendRequest | AppendResponse | InstallSnapshot | InstallSnapshotResponse | TimeoutNow


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@fast_init
@dataclass(frozen=True, slots=True)
class RoleChange:
    role: Role
    term: int
    leader: int | None


@fast_init
@dataclass(frozen=True, slots=True)
class Ready:
    """One batch of work for the shell around :class:`Consensus`.

    **Persist before you send.**  The shell must, in this order:

    1. if ``snapshot`` is set, store it durably and reset the log to start at
       its position (the service loads it before applying anything below);
    2. if ``truncate_to`` is set, cut the stored log back to end there, and
       make the cut durable before step 3 writes anything after it: a crash
       must leave the old tail or a prefix of what replaces it, never the old
       tail in one file with new entries after it in the next (recovery would
       read one valid log splicing two histories, breaking I3 on this
       member's own disk);
    3. append ``entries`` to the stored log;
    4. if ``hard_state`` is set, store it atomically;
    5. make 1-4 durable (fsync, per the configured policy);
    6. apply ``committed`` to the service, in order (this may come first,
       before 1-5, when ``snapshot`` is not set: committed entries are
       durable on a quorum already, and the writes concern later entries; or
       last, after 7: the messages promise nothing about the service);
    7. only now send ``messages``: a vote or an append position that reaches a
       peer before the state it promises is on disk lets a crash undo a
       decision the cluster already counted.  One exception: a leader's
       ``AppendRequest`` may be sent before steps 1-5 (Raft thesis §10.2.1,
       the leader writes in parallel with its followers): it promises nothing
       about the leader's disk (the leader's own position counts towards
       commit only once ``advance`` says it is durable, I4), and the term it
       carries was made durable before the leader's first vote request;
    8. call ``Consensus.advance(ready)``.

    Step 5 may run in the background (a disk with a sync thread): then the
    shell calls ``advance(ready, durable=False)`` once the writes are issued,
    holds step 7's messages, in order, behind every sync still in flight,
    sends them when that sync completes and calls ``Consensus.persisted``
    with the end of the entries it covered.  The leader's ``AppendRequest``
    still goes at once.  A Ready with a snapshot, a cut or a new term or vote
    first waits for the syncs in flight and is made durable before anything
    else goes on.
    """

    snapshot: Snapshot | None
    truncate_to: int | None
    entries: tuple[Entry, ...]
    hard_state: HardState | None
    committed: tuple[Entry, ...]
    messages: tuple[Message, ...]
    role_change: RoleChange | None

    def is_empty(self) -> bool:
        return not (self.snapshot or self.truncate_to is not None or self.entries or self.hard_state
                    or self.committed or self.messages or self.role_change)
