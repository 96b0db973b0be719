"""``ReplayMerge``: a late joiner catches up from a recording, then switches to
the live stream with no gap and no duplicate.

How (Aeron's ReplayMerge idea, with two subscriptions instead of one
multi-destination one, so it works over IPC too):

1. REPLAY: replay the recording from ``position``, unbounded (following it
   live), with the recording's session id, and deliver it.  Every
   ``check_interval_s`` ask the archive for the recording's live position.
2. When the replay is within ``window`` bytes of it, subscribe to the live
   stream and stop reading the replay (ATTACH): the live image of the recorded
   publication joins at position J, which is at or past everything the
   replay delivered (the replay never runs ahead of the recording, nor the
   recording of the live stream).
3. CATCHUP: deliver the replay up to exactly J (a fragment ending past J is
   left unread), then stop the replay.
4. LIVE: deliver the live image from J on.

Stream positions are the same in the recording and the live stream, so the
switch at J is exact; a message fragmented across J is reassembled from the
replay's first fragments and the live stream's last ones (one reassembly
buffer serves both).

``poll(fragment_limit)`` does a bounded amount of work and returns it; the
handler gets ``(message: bytes, position: int)`` (the position after the
message).  Not thread safe: one thread polls.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from ..transport.client import ControlledPollAction
from ..transport.uri import ChannelUri
from .client import ArchiveClient, replay_image_session_id
from .errors import ArchiveError

__all__ = ["ReplayMerge"]

_BEGIN = 0x80
_END = 0x40

REPLAY, ATTACH, CATCHUP, LIVE, FAILED = "replay", "attach", "catchup", "live", "failed"


class ReplayMerge:
    def __init__(self, aeron: Any, client: ArchiveClient, recording_id: int, live_channel: str, live_stream_id: int,
                 handler: Callable[[bytes, int], object], replay_channel: str = "aeron:ipc", replay_stream_id: int = 10041,
                 position: int = -1, window: int | None = None, check_interval_s: float = 0.01,
                 clock: Callable[[], float] = time.monotonic) -> None:
        d = client.describe(recording_id)
        if d is None:
            raise ArchiveError("unknown recording", recording_id=recording_id, fault="user")
        self.aeron = aeron
        self.client = client
        self.recording_id = recording_id
        self.live_channel = live_channel
        self.live_stream_id = live_stream_id
        self.handler = handler
        self.session_id = d.session_id
        self.window = window if window is not None else d.term_buffer_length // 4
        self.check_interval_s = check_interval_s
        self.clock = clock
        self.state = REPLAY
        self.position = d.start_position if position == -1 else position
        self.join_position: int | None = None
        self._partial: bytearray | None = None
        self._next_check = 0.0
        self.live_sub: Any = None
        uri = ChannelUri.parse(replay_channel, strict=False)
        uri.params["session-id"] = str(self.session_id)  # the replay's image carries the live stream's session id
        self.replay_sub = aeron.add_subscription(replay_channel, replay_stream_id)
        self.replay_session_id = client.replay(recording_id, position, -1, str(uri), replay_stream_id)
        assert replay_image_session_id(self.replay_session_id) == self.session_id

    @property
    def is_merged(self) -> bool:
        return self.state == LIVE

    def _on_fragment(self, buffer: memoryview, header: Any) -> object:
        end = header.position
        if self.state == CATCHUP and self.join_position is not None and end > self.join_position:
            return ControlledPollAction.ABORT  # the live stream has it from J on
        flags = header.flags & (_BEGIN | _END)
        if flags == _BEGIN | _END:
            self.handler(bytes(buffer), end)
        elif flags & _BEGIN:
            self._partial = bytearray(buffer)
        elif self._partial is not None:
            self._partial += buffer
            if flags & _END:
                message, self._partial = bytes(self._partial), None
                self.handler(message, end)
        self.position = end
        return ControlledPollAction.CONTINUE

    def _poll_image(self, sub: Any, limit: int) -> int:
        try:
            return int(sub.poll_image(self.session_id, self._on_fragment, limit, True))
        except LookupError:
            return 0

    def poll(self, fragment_limit: int = 100) -> int:
        if self.state == REPLAY:
            n = self._poll_image(self.replay_sub, fragment_limit)
            now = self.clock()
            if now >= self._next_check:
                self._next_check = now + self.check_interval_s
                d = self.client.describe(self.recording_id)
                live = d.stop_position if d is not None else -1
                if live >= 0 and live - self.position <= self.window:
                    self.live_sub = self.aeron.add_subscription(self.live_channel, self.live_stream_id)
                    self.state = ATTACH
            return n
        if self.state == ATTACH:
            st = self.live_sub.image_status(self.session_id)
            if st is None:
                return 0
            if st.join_position < self.position:
                self.state = FAILED
                raise ArchiveError("live stream joined behind the replay (ours)", recording_id=self.recording_id,
                                   join_position=st.join_position, replay_position=self.position)
            self.join_position = int(st.join_position)
            self.state = CATCHUP
        if self.state == CATCHUP:
            n = self._poll_image(self.replay_sub, fragment_limit)
            if self.position != self.join_position and self._partial is None:
                # The join may sit on a term boundary behind padding (an offer that did not fit
                # the term's end): no message ends there, but the replay image's position,
                # which passes padding, reaches it.
                st = self.replay_sub.image_status(self.session_id)
                if st is not None and st.position == self.join_position:
                    self.position = st.position
            if self.position == self.join_position:
                try:
                    self.client.stop_replay(self.replay_session_id)
                except ArchiveError:
                    pass  # it may have ended on its own
                self.replay_sub.close()
                self.state = LIVE
            return n
        if self.state == LIVE:
            return self._poll_image(self.live_sub, fragment_limit)
        return 0

    def close(self) -> None:
        if self.state not in (LIVE, FAILED):
            try:
                self.client.stop_replay(self.replay_session_id)
            except (ArchiveError, TimeoutError):
                pass
        self.replay_sub.close()
        if self.live_sub is not None:
            self.live_sub.close()
