"""Errors of the archive, each saying what, where and whose fault it is.

Messages are ``key=value`` pairs.  ``fault`` is ``user`` (bad configuration,
arguments or request), ``peer`` (a client or another process sent something
invalid), ``storage`` (the disk holds something the archive did not write, or
lost something it did) or ``ours`` (an invariant of this package broke).
"""

from __future__ import annotations

from enum import IntEnum

from tickline.cluster.errors import kv  # one key=value formatter for the framework's error messages

from .._aeron import ArchiveDamageError

__all__ = [
    "ArchiveError",
    "ArchiveDamageError",
    "ArchiveProtocolError",
    "CatalogError",
    "ConfigError",
    "ErrorCode",
    "RequestError",
    "kv",
]


class ErrorCode(IntEnum):
    """The control protocol's error codes (schemas/archive.xml ``ErrorCode``)."""

    NONE = 0
    GENERIC = 1
    UNKNOWN_RECORDING = 2
    RECORDING_ACTIVE = 3
    BAD_POSITION = 4
    STORAGE = 5
    UNKNOWN_SUBSCRIPTION = 6
    UNKNOWN_REPLAY = 7
    BAD_REQUEST = 8


class ArchiveError(Exception):
    """Base of the archive's errors.  ``code`` is the protocol's error code when the
    error came back from (or goes out to) a client as a response."""

    fault = "ours"
    code = ErrorCode.GENERIC

    def __init__(self, what: str, **fields: object) -> None:
        self.what = what
        self.fields = fields
        code = fields.pop("code", None)
        if code is not None:
            self.code = ErrorCode(int(code))  # type: ignore[call-overload]
        fault = fields.pop("fault", None)
        if fault is not None:
            self.fault = str(fault)
        super().__init__(f"{what}: {kv(**fields, fault=self.fault)}" if fields else f"{what}: fault={self.fault}")


class ConfigError(ArchiveError, ValueError):
    fault = "user"


class ArchiveProtocolError(ArchiveError, ValueError):
    """A control message that cannot be decoded (the sender's fault)."""

    fault = "peer"


class CatalogError(ArchiveError):
    """The catalog file is damaged or unreadable; nothing was changed on disk."""

    fault = "storage"


class RequestError(ArchiveError):
    """A request the archive refused (or, client side, the error response it got)."""

    fault = "user"
