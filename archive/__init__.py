"""tickline.archive: record any stream to disk and replay it.

- ``Archive`` (``daemon``): the archive agent (recorder, replayer, catalog, control protocol shell);
- ``ArchiveClient`` (``client``): start/stop recordings, list them, replay, stop a replay;
- ``ArchiveConfig`` (``config``): the validated configuration (``TICKLINE_ARCHIVE_*`` overrides);
- ``Catalog`` (``catalog``): the crash-safe catalog of recording descriptors;
- ``ReplayMerge`` (``replay_merge``): a late joiner replays, catches up and switches to the live stream;
- ``wire``: the SBE messages of ``schemas/archive.xml``; ``control``: the sans-IO control protocol.

Names are imported lazily so that the pure-Python parts load without the extension.
"""

# The public API, imported lazily (type checkers see the real types).
from typing import TYPE_CHECKING

from tickline._lazy import lazy_exports

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
# spelled out: type checkers read __all__ only as a literal
__all__ = [
    "Archive",
    "ArchiveClient",
    "ArchiveConfig",
    "ArchiveDamageError",
    "ArchiveError",
    "Catalog",
    "CatalogError",
    "ErrorCode",
    "FROM_START",
    "RecordingDescriptor",
    "RecordingEvents",
    "RecordingState",
    "ReplayMerge",
    "RequestError",
    "UNBOUNDED",
    "replay_image_session_id",
]
if TYPE_CHECKING:
    from .catalog import Catalog
    from .client import ArchiveClient, FROM_START, RecordingEvents, UNBOUNDED, replay_image_session_id
    from .config import ArchiveConfig
    from .daemon import Archive
    from .errors import ArchiveDamageError, ArchiveError, CatalogError, ErrorCode, RequestError
    from .replay_merge import ReplayMerge
    from .wire import RecordingDescriptor, RecordingState
else:
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
