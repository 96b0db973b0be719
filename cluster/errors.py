"""Errors of the cluster, each saying what, where and whose fault it is.

Messages are ``key=value`` pairs so logs can be grepped and tests can assert
them.  ``fault`` is one of ``user`` (bad configuration or arguments),
``peer`` (another member or a client sent something invalid), ``storage``
(the disk returned something we did not write) or ``ours`` (a bug: an
invariant of this package was broken).
"""

from __future__ import annotations

__all__ = [
    "ClusterError",
    "ConfigError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "LogCorruptionError",
    "SafetyViolation",
    "NotLeaderError",
    "kv",
]


def kv(**fields: object) -> str:
    """Render ``fields`` as ``key=value`` pairs; values with spaces are quoted."""
    parts = []
    for key, value in fields.items():
        text = str(value)
        if " " in text or text == "":
            text = repr(text)
        parts.append(f"{key}={text}")
    return " ".join(parts)


class ClusterError(Exception):
    fault = "ours"

    def __init__(self, what: str, **fields: object) -> None:
        self.what = what
        self.fields = fields
        super().__init__(f"{what}: {kv(**fields, fault=self.fault)}")


class ConfigError(ClusterError, ValueError):
    """A configuration value is invalid (the user's fault)."""

    fault = "user"


class LocalProtocolError(ClusterError):
    """The caller used an API out of order (the caller's fault)."""

    fault = "user"


class RemoteProtocolError(ClusterError):
    """A peer or a client sent something that breaks the protocol."""

    fault = "peer"


class LogCorruptionError(ClusterError):
    """Stored data failed a check in a way that cannot be repaired by truncation."""

    fault = "storage"


class SafetyViolation(ClusterError):
    """A consensus invariant was about to be broken; a bug in this package."""

    fault = "ours"


class NotLeaderError(ClusterError):
    """A proposal reached a member that is not the leader; ``leader`` is a hint or None."""

    fault = "user"

    def __init__(self, what: str, *, leader: int | None, **fields: object) -> None:
        self.leader = leader
        super().__init__(what, leader=leader, **fields)
