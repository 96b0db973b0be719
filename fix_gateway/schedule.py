"""Session schedules: when a session may be logged on, and its daily reset.

A schedule is a daily window ``[start_time, end_time)`` in a time zone
(IANA name, e.g. ``America/New_York``).  ``end_time`` before ``start_time``
means the window runs over midnight; equal times mean a 24-hour session
that resets at ``start_time``.  No schedule (``SessionSchedule.always()``)
means always in session and never reset by time.

Pure functions of the time passed in; no clock is read here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .config import ConfigError

__all__ = ["SessionSchedule"]


def _parse_time(key: str, value: str) -> dt.time:
    try:
        parts = [int(p) for p in value.split(":")]
        if len(parts) == 2:
            parts.append(0)
        if len(parts) != 3:
            raise ValueError
        return dt.time(parts[0], parts[1], parts[2])
    except ValueError:
        raise ConfigError(f"bad time of day: fault=config key={key} value={value!r} expected=HH:MM[:SS]") from None


@dataclass(frozen=True)
class SessionSchedule:
    """start_time/end_time: ``HH:MM[:SS]`` local to ``timezone``; empty both = always."""

    start_time: str = ""
    end_time: str = ""
    timezone: str = "UTC"
    daily_reset: bool = True

    def __post_init__(self) -> None:
        if bool(self.start_time) != bool(self.end_time):
            raise ConfigError(f"schedule needs both ends: fault=config key=start_time/end_time value={(self.start_time, self.end_time)!r}")
        if self.start_time:
            _parse_time("start_time", self.start_time)
            _parse_time("end_time", self.end_time)
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"unknown time zone: fault=config key=timezone value={self.timezone!r}") from None

    @classmethod
    def always(cls) -> "SessionSchedule":
        return cls()

    @property
    def is_always(self) -> bool:
        return not self.start_time

    def session_start(self, now: float) -> float | None:
        """Epoch seconds at which the session period containing ``now`` began; None outside."""
        if self.is_always:
            return None
        tz = ZoneInfo(self.timezone)
        start_t = _parse_time("start_time", self.start_time)
        end_t = _parse_time("end_time", self.end_time)
        local = dt.datetime.fromtimestamp(now, tz)
        day = local.date()
        start_today = dt.datetime.combine(day, start_t, tzinfo=tz)
        end_today = dt.datetime.combine(day, end_t, tzinfo=tz)
        start_yesterday = dt.datetime.combine(day - dt.timedelta(days=1), start_t, tzinfo=tz)
        if start_t < end_t:
            return start_today.timestamp() if start_today <= local < end_today else None
        if start_t > end_t:
            if local >= start_today:
                return start_today.timestamp()
            return start_yesterday.timestamp() if local < end_today else None
        return (start_today if local >= start_today else start_yesterday).timestamp()

    def is_in_session(self, now: float) -> bool:
        return self.is_always or self.session_start(now) is not None

    def needs_reset(self, store_creation_time: float, now: float) -> bool:
        """True when the store predates the current session period (daily reset due)."""
        if self.is_always or not self.daily_reset:
            return False
        start = self.session_start(now)
        return start is not None and store_creation_time < start
