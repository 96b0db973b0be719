"""The feed's archive source: a recording replayed onto the strategies' market-data stream.

    source = ArchiveSource(aeron, recording_id=3)                         # or channel=/stream_id=: its latest recording
    replay_session_id = source.start("aeron:ipc", 1004)                   # the archive publishes the recorded messages there

The archive (``tickline archive run``) publishes the recorded bytes unchanged,
so each message keeps the ``seqNum`` it was published with: a strategy's
``SequenceTracker`` sees the recorded sequence, and the same strategy code runs
on a replay as on the live feed.  A recording that is still being recorded is
followed live until it stops.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ArchiveSource", "ReplaySourceError"]


class ReplaySourceError(ValueError):
    """No recording to replay (the user's: a wrong id, channel or stream)."""


class ArchiveSource:
    """Which recording to replay: ``recording_id``, or the latest recording of ``channel``/``stream_id``."""

    def __init__(self, aeron: Any, *, recording_id: int | None = None, channel: str | None = None, stream_id: int | None = None,
                 control_channel: str = "aeron:ipc", control_stream_id: int | None = None, timeout: float = 10.0) -> None:
        if (recording_id is None) == (stream_id is None):
            raise ReplaySourceError("name a recording_id or the stream_id whose latest recording to replay: fault=user")
        from tickline.archive import ArchiveClient

        kw: dict[str, Any] = {"control_channel": control_channel, "timeout": timeout}
        if control_stream_id is not None:
            kw["control_stream_id"] = control_stream_id
        self.client = ArchiveClient.connect(aeron, **kw)
        self.recording_id, self.channel, self.stream_id = recording_id, channel, stream_id
        self.replay_session_id: int | None = None

    def resolve(self) -> int:
        """The recording's id (the newest of the channel/stream when no id was given)."""
        if self.recording_id is not None:
            d = self.client.describe(self.recording_id)
            if d is None:
                raise ReplaySourceError(f"unknown recording: recording_id={self.recording_id} fault=user")
            return self.recording_id
        found = self.client.list_recordings(stream_id=self.stream_id, **({"channel_fragment": self.channel} if self.channel else {}))
        if not found:
            raise ReplaySourceError(f"no recording of the stream: channel={self.channel or '*'} stream_id={self.stream_id} fault=user")
        return max(d.recording_id for d in found)

    def start(self, channel: str, stream_id: int) -> int:
        """Ask the archive to replay the whole recording onto ``channel``/``stream_id``; the replay's session id."""
        from tickline.archive.client import FROM_START, UNBOUNDED

        rid = self.resolve()
        self.replay_session_id = self.client.replay(rid, position=FROM_START, length=UNBOUNDED, channel=channel, stream_id=stream_id)
        return self.replay_session_id

    def close(self) -> None:
        self.client.close()
