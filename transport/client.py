"""The Aeron client: connect to a driver, make publications and subscriptions.

    with MediaDriver.embedded() as driver, Aeron(driver.dir) as aeron:
        pub = aeron.add_publication("aeron:ipc", 10)
        sub = aeron.add_subscription("aeron:ipc", 10)

Hot calls return results instead of raising for outcomes worth retrying:
``Publication.offer`` and ``try_claim`` return the new position (> 0) or an
``OfferResult`` (NOT_CONNECTED, BACK_PRESSURED, ADMIN_ACTION, CLOSED,
MAX_POSITION_EXCEEDED); they raise ``PublicationError`` for terminal failures
and ``ClosedError`` after close.  ``Subscription.poll(handler, limit)`` calls
``handler(buffer, header)`` with a zero-copy read-only memoryview valid only
during the call.

Threading: the client conductor runs on a C thread of Aeron's (it never takes
the GIL) unless ``invoker=True``, in which case nothing runs in the
background and the caller must call ``do_work()`` (or run ``as_agent()``).
A concurrent publication may be offered to from several threads; exclusive
publications, subscriptions and the client's own methods belong to one thread.
"""

from __future__ import annotations

import functools
from enum import IntEnum
from typing import TYPE_CHECKING, Callable

from .. import _aeron
from .._aeron import (
    AeronError,
    BufferClaim,
    ClosedError,
    DriverError,
    FragmentAssembler,
    Header,
    ImageInfo,
    ImageStatus,
    MessageTooLong,
    Publication,
    PublicationError,
    RegistrationError,
    Subscription,
)
from .uri import ChannelUri

if TYPE_CHECKING:
    from .driver import MediaDriver

__all__ = [
    "Aeron",
    "OfferResult",
    "ControlledPollAction",
    "Publication",
    "Subscription",
    "BufferClaim",
    "FragmentAssembler",
    "Header",
    "ImageInfo",
    "ImageStatus",
    "AeronError",
    "ClosedError",
    "DriverError",
    "PublicationError",
    "MessageTooLong",
    "RegistrationError",
]


class OfferResult(IntEnum):
    """Negative results of ``offer``/``try_claim``; a positive result is the new stream position."""

    NOT_CONNECTED = _aeron.NOT_CONNECTED
    BACK_PRESSURED = _aeron.BACK_PRESSURED
    ADMIN_ACTION = _aeron.ADMIN_ACTION
    CLOSED = _aeron.PUBLICATION_CLOSED
    MAX_POSITION_EXCEEDED = _aeron.MAX_POSITION_EXCEEDED


class ControlledPollAction(IntEnum):
    """What a ``controlled_poll`` handler returns (None means CONTINUE)."""

    ABORT = _aeron.ACTION_ABORT  # don't consume this fragment; stop; it comes again next poll
    BREAK = _aeron.ACTION_BREAK  # consume this fragment and stop the poll
    COMMIT = _aeron.ACTION_COMMIT  # consume and make the position visible now, continue
    CONTINUE = _aeron.ACTION_CONTINUE  # consume and continue


def _channel(channel: "str | ChannelUri") -> str:
    if isinstance(channel, ChannelUri):
        return str(channel.validate())
    # Known keys are checked; unknown ones go to the driver, which is the
    # final judge (a newer driver may know more keys than this module).
    return str(ChannelUri.parse(channel, strict=False))


def _stream_id(stream_id: int) -> int:
    if not isinstance(stream_id, int) or isinstance(stream_id, bool) or not -(2**31) <= stream_id < 2**31:
        raise ValueError(f"stream_id must be a 32-bit integer: stream_id={stream_id!r}")
    return stream_id


ImageHandler = Callable[[ImageInfo], object]


class Aeron:
    """A client connected to the media driver in ``dir``.

    Raises ``DriverError`` naming the directory when no driver answers within
    ``timeout`` seconds.  ``pre_touch=True`` touches every page of a log buffer
    when it is mapped, so the first messages don't pay page faults (slower
    resource creation, flatter latency: benchmarks turn it on).

    ``invoker=True``: no conductor thread; call ``do_work()`` from your duty
    cycle.  Blocking calls (``add_*``) then turn the conductor themselves, and
    call ``wait_hook()`` too, so an invoker-mode ``MediaDriver`` on the same
    thread can be turned (``wait_hook=driver.do_work``).
    """

    def __init__(
        self,
        dir: str | None = None,
        *,
        timeout: float = 10.0,
        invoker: bool = False,
        pre_touch: bool = False,
        client_name: str = "",
        wait_hook: Callable[[], object] | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0: timeout={timeout}")
        self._client = _aeron.connect(
            dir or "", driver_timeout_ms=int(timeout * 1000), invoker=invoker, pre_touch=pre_touch,
            client_name=client_name, wait_hook=wait_hook,
        )
        self.dir: str = self._client.dir
        self.invoker: bool = invoker

    def add_publication(self, channel: "str | ChannelUri", stream_id: int) -> Publication:
        """A concurrent publication (several publishers may share its log)."""
        return self._client.add_publication(_channel(channel), _stream_id(stream_id))

    def add_exclusive_publication(self, channel: "str | ChannelUri", stream_id: int) -> Publication:
        """An exclusive publication: one writer thread, a log of its own, cheaper offers."""
        return self._client.add_exclusive_publication(_channel(channel), _stream_id(stream_id))

    def add_subscription(
        self,
        channel: "str | ChannelUri",
        stream_id: int,
        on_available_image: ImageHandler | None = None,
        on_unavailable_image: ImageHandler | None = None,
    ) -> Subscription:
        """A subscription.  Image callbacks get an ``ImageInfo`` and run on the polling thread, at the start of ``poll``.

        As in Aeron, the client conductor adds an image to the subscription before it
        reports it, so an image's first fragments can arrive one poll before its
        ``on_available_image`` call."""
        return self._client.add_subscription(_channel(channel), _stream_id(stream_id), on_available_image, on_unavailable_image)

    def add_counter(self, type_id: int, label: str, key: bytes = b"") -> "_aeron.AeronCounter":
        """A counter of this process's in the driver's CnC file, shown by ``tickline stat``
        (and ``--prometheus``) beside the driver's; the way Aeron's archive and cluster publish theirs.

        ``type_id``: from ``tickline.transport.counter_types`` (one registry for the project);
        ``label``: up to 380 bytes (longer is cut at a character boundary); ``key``: up to
        112 bytes of metadata (``ValueError`` beyond).  Blocks until the driver answers.
        The counter has ``set(v)``, ``add(d=1)`` (saturating), ``get()`` and ``close()``;
        after its close, or the client's, writes are ignored and ``get`` raises ``ClosedError``.
        Not thread safe (like the client's other objects: one thread, holding the GIL)."""
        return _aeron.add_counter(self._client, type_id, label, key)

    def do_work(self) -> int:
        """One duty cycle of the client conductor (``invoker=True`` only); returns the work count."""
        return int(self._client.do_work())

    def duty_cycle(self, driver: "MediaDriver | None" = None) -> Callable[[], int]:
        """A zero-argument callable for a spin loop: each call turns this invoker-mode
        client's conductor, and first ``driver`` (an invoker-mode embedded driver) if
        given, in one call into C.  Returns the work count."""
        if not self.invoker:
            raise RuntimeError(f"duty_cycle() needs invoker=True: dir={self.dir}")
        if driver is None:
            return self._client.turn
        embedded = driver._embedded
        if embedded is None or not embedded.invoker:
            raise ValueError(f"duty_cycle() needs an embedded invoker-mode driver: driver={driver!r}")
        return functools.partial(self._client.turn, embedded)

    def as_agent(self) -> "_ClientAgent":
        """This invoker-mode client as an agent, to run its conductor in the caller's duty cycle."""
        if not self.invoker:
            raise RuntimeError(f"as_agent() needs invoker=True: dir={self.dir}")
        return _ClientAgent(self)

    def take_errors(self) -> list[tuple[int, str]]:
        """Errors the conductor reported since the last call (code, message)."""
        return list(self._client.take_errors())

    @property
    def is_closed(self) -> bool:
        """True after ``close()``, or once the client gave up on a dead driver."""
        return bool(self._client.is_closed)

    @property
    def driver_lost(self) -> bool:
        """True once the conductor saw the driver stop answering (driver timeout)."""
        return bool(self._client.driver_lost)

    @property
    def client_id(self) -> int:
        return int(self._client.client_id)

    def close(self) -> None:
        """Close the client and every publication and subscription it made (idempotent)."""
        self._client.close()

    def __enter__(self) -> "Aeron":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Aeron(dir={self.dir!r}, invoker={self.invoker}, closed={self.is_closed})"


class _ClientAgent:
    def __init__(self, aeron: Aeron) -> None:
        self.aeron = aeron

    def role_name(self) -> str:
        return f"aeron-client[{self.aeron.dir}]"

    def on_start(self) -> None:
        pass

    def do_work(self) -> int:
        return self.aeron.do_work()

    def on_close(self) -> None:
        pass
