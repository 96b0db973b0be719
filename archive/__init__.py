"""tickline.archive: record any stream to disk and replay it.

- ``Archive`` (``daemon``): the archive agent (recorder, replayer, catalog, control protocol shell);
- ``ArchiveClient`` (``client``): start/stop recordings, list them, replay, stop a replay;
- ``ArchiveConfig`` (``config``): the validated configuration (``TICKLINE_ARCHIVE_*`` overrides);
- ``Catalog`` (``catalog``): the crash-safe catalog of recording descriptors;
- ``ReplayMerge`` (``replay_merge``): a late joiner replays, catches up and switches to the live stream;
- ``wire``: the SBE messages of ``schemas/archive.xml``; ``control``: the sans-IO control protocol.

Names are imported lazily so that the pure-Python parts load without the extension.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Archive": "daemon",
    "ArchiveClient": "client",
    "RecordingEvents": "client",
    "replay_image_session_id": "client",
    "UNBOUNDED": "client",
    "FROM_START": "client",
    "ReplayMerge": "replay_merge",
    "ArchiveConfig": "config",
    "Catalog": "catalog",
    "RecordingDescriptor": "wire",
    "RecordingState": "wire",
    "ArchiveError": "errors",
    "ArchiveDamageError": "errors",
    "CatalogError": "errors",
    "RequestError": "errors",
    "ErrorCode": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tickline.archive' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
