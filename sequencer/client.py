"""``SequencerGateway``: a strategy's (or a gateway's) way to the sequencer.

It satisfies the ``OrderGateway`` protocol of ``tickline.strategy.gateway``:

- ``send(message) -> bool``: one encoded ``schemas/orders.xml`` message with
  its SBE header (NewOrder, CancelOrder, ReplaceOrder); False when not
  connected or too many messages are unanswered (retry later);
- ``poll(handler, limit) -> int``: turns the cluster client and delivers to
  ``handler`` at most ``limit`` encoded ``ExecutionReport`` / ``OrderReject``
  messages addressed to this client (a view valid only during the call).

Behind it is a cluster client (exactly once across leader changes: retries
keep their correlation id) and one long poll for this session's events kept
outstanding.  The sequencing receipt (``Sequenced``) is not passed on: it is
the "order -> sequenced" stage, offered to ``on_sequenced`` for measurement.
Not thread safe; run it on the strategy's thread (it starts none).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable

from tickline.cluster.aeron_io import AeronClusterClient

from . import protocol as P

__all__ = ["SequencerGateway", "members_from_topology", "CREDENTIALS_KEY", "cluster_credentials"]

#: the one key every cluster client component of a topology names its credentials with
#: (a 0600 file holding ``principal:secret``; ``tickline cluster credentials --out FILE``)
CREDENTIALS_KEY = "cluster_credentials_file"


def cluster_credentials(path: str | None, where: str) -> bytes:
    """The credentials in the file ``path`` names (``where``: the topology key that names it,
    for the error); none (b"") when ``path`` is empty.  A ``ClusterError`` if the file cannot be used."""
    if not path:
        return b""
    from tickline.cluster.auth import read_credentials

    return read_credentials(str(path), where)


def members_from_topology(path: str) -> tuple[dict[int, tuple[str, int]], str | None]:
    """The cluster members and the media driver directory of a topology file."""
    from tickline.cluster.daemon import load_topology

    topo = load_topology(path)
    return topo.members, topo.aeron_dir


class SequencerGateway:
    def __init__(self, members: dict[int, tuple[str, int]], *, aeron_dir: str | None = None, retry_timeout: int = 200,
                 max_outstanding: int = 4096, max_events: int = 256, credentials: bytes = b"",
                 cluster: AeronClusterClient | None = None) -> None:
        """``cluster``: the cluster client to use (tests give a scripted one); by default one
        to ``members`` through the media driver at ``aeron_dir``."""
        self.cluster = cluster if cluster is not None else AeronClusterClient(
            members, aeron_base=aeron_dir, retry_timeout=retry_timeout, credentials=credentials)
        self.max_outstanding = max_outstanding
        self.max_events = max_events
        self._poll_corr: int | None = None
        self._after = 0  # the last event number delivered
        self._ready: deque[bytes | memoryview | tuple[int, bytes]] = deque()
        self._undelivered = 0  # events received and not yet handed to the handler
        self._origin: bytes | None = None  # Attach(origin), offered first once connected
        self._attach_corr: int | None = None
        self.attached = False
        self.sent = self.sequenced = self.events = self.answers = self.malformed = 0
        #: called with (ClOrdId, OrderId, cluster time ms) when an order is sequenced
        self.on_sequenced: Callable[[str, int, int], None] | None = None

    @classmethod
    def from_topology(cls, path: str, *, cluster_credentials_file: str = "", where: str = CREDENTIALS_KEY,
                      **kwargs: object) -> "SequencerGateway":
        """A gateway to the cluster of topology ``path``, presenting the credentials in
        ``cluster_credentials_file`` (``where``: the key that named it, for errors)."""
        members, aeron_dir = members_from_topology(path)
        credentials = cluster_credentials(cluster_credentials_file, where)
        return cls(members, aeron_dir=aeron_dir, credentials=credentials, **kwargs)  # type: ignore[arg-type]

    @property
    def connected(self) -> bool:
        return self.cluster.client.connected

    def attach(self, origin: str) -> None:
        """Name this client ``origin`` (1..64 printable ASCII characters) in the cluster before
        anything else it sends: a restarted client attaching under the same name takes over the
        orders of the one before it (a ClOrdId it used stays refused as a duplicate; their
        reports come here) and the events it had not taken.  Call before the first ``send``;
        ``send`` refuses until the Attach is on its way."""
        self._origin = P.encode_attach(origin)

    def _offer_attach(self) -> None:
        if self._origin is not None and self._attach_corr is None and self.cluster.client.connected:
            self._attach_corr = self.cluster.offer(self._origin)

    def send(self, message: bytes | memoryview) -> bool:
        c = self.cluster.client
        if not c.connected or len(c.outstanding) >= self.max_outstanding:
            return False
        if self._origin is not None and self._attach_corr is None:
            self._offer_attach()  # ahead of this order in the log: the order is sent under the name
        self.cluster.offer(message if type(message) is bytes else bytes(message))  # (bytes(b) of bytes is b: a call less)
        self.sent += 1
        return True

    def poll(self, handler: Callable[[memoryview], None], limit: int = 64) -> int:
        cl = self.cluster
        # the Attach still to offer, or no long poll outstanding (both rare: one check for both)
        if self._poll_corr is None or self._attach_corr is None and self._origin is not None:
            self._keep_polling()
        answers = cl.poll()
        work = self._take(answers) if answers else 0
        if self._ready:
            work += self._deliver(handler, limit)
        return work + cl.work

    def _keep_polling(self) -> None:
        cl = self.cluster
        if self._origin is not None and self._attach_corr is None:
            self._offer_attach()
        # the next poll says which events were taken (``after``): only once every event of the
        # last batch went to the handler, so a client killed with events still queued here gets
        # them again (a successor under the same Attach name does)
        if self._poll_corr is None and cl.client.connected and not self._undelivered:
            self._poll_corr = cl.offer(P.encode_event_poll(self._after, self.max_events))

    def _take(self, answers: list[tuple[int, bytes]]) -> int:
        """The cluster's answers: Sequenced receipts to ``on_sequenced``, the long poll's batch
        and rejects into the queue the handler is given."""
        sequenced_fields = P.sequenced_fields
        for corr, payload in answers:
            fields = sequenced_fields(payload)
            if fields is not None and corr != self._poll_corr and corr != self._attach_corr:
                # the answer to (nearly) every order: read in place, the general path below is for the rest
                self.answers += 1
                self.sequenced += 1
                on_sequenced = self.on_sequenced
                if on_sequenced is not None:
                    on_sequenced(fields[2], fields[0], fields[1])
                continue
            if corr == self._attach_corr:
                self.attached = True
                continue
            if corr == self._poll_corr:
                self._poll_corr = None
                self._on_batch(payload)
                continue
            self.answers += 1
            try:
                schema, template = P.peek(payload)
            except P.ProtocolError:
                self.malformed += 1
                continue
            if schema == P.SCHEMA_ID and template == P.SEQUENCED:
                self.sequenced += 1
                if self.on_sequenced is not None:
                    s = P.decode(payload)
                    self.on_sequenced(s.cl_ord_id, s.order_id, s.timestamp)  # type: ignore[union-attr]
            else:
                self._ready.append(payload)  # a reject, from the sequencer's risk checks
        return len(answers)

    def _deliver(self, handler: Callable[[memoryview], None], limit: int) -> int:
        n = 0
        ready = self._ready
        while ready and n < limit:
            item = ready.popleft()
            if type(item) is tuple:  # an event (its number, the message)
                self._undelivered -= 1
                item = item[1]
            handler(memoryview(item))  # type: ignore[arg-type]
            n += 1
        return n

    def recover(self, account: str, timeout: float = 10.0) -> tuple[list[bytes], dict[str, tuple[int, int, int]]] | None:
        """A restarted strategy takes over ``account`` (``tickline strategy run`` asks before it
        starts): this session receives the account's live orders' events from now on.  Returns
        (an encoded ExecutionReport per live order, {symbol: (quantity, cost, realized)}), or
        None when the cluster did not answer within ``timeout`` seconds.  Blocks; call it
        before the strategy runs, never from a callback."""
        cl = self.cluster
        deadline = time.monotonic() + timeout
        while not cl.client.connected:
            if time.monotonic() > deadline:
                return None
            cl.poll()
            time.sleep(0.001)
        corr = cl.offer(P.encode_recover(account))
        while time.monotonic() < deadline:
            for c, payload in cl.poll():
                if c == self._attach_corr:
                    self.attached = True
                    continue
                if c != corr:
                    self._ready.append(payload)  # nothing else is outstanding before the runner starts
                    continue
                try:
                    _last, items = P.decode_batch(payload)
                except P.ProtocolError:
                    self.malformed += 1
                    return None
                reports: list[bytes] = []
                positions: dict[str, tuple[int, int, int]] = {}
                for _n, msg in items:
                    if P.peek(msg) == (P.SCHEMA_ID, P.POSITION):
                        pr = P.decode(msg)
                        positions[pr.symbol] = (pr.quantity, pr.cost, pr.realized)  # type: ignore[union-attr]
                    else:
                        reports.append(bytes(msg))
                return reports, positions
            time.sleep(0.001)
        return None

    def _on_batch(self, payload: bytes) -> None:
        try:
            last, items = P.decode_batch(payload)
        except P.ProtocolError:
            self.malformed += 1
            return
        for num, msg in items:
            if num > self._after:  # a batch re-sent after a leader change repeats nothing
                self._after = num
                self.events += 1
                self._undelivered += 1
                self._ready.append((num, bytes(msg)))

    def close(self) -> None:
        self.cluster.close()
