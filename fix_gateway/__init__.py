"""tickline.fix_gateway: FIX session layer (sans-IO), message store, data
dictionaries, acceptor/initiator agents and the FIX <-> SBE bridge.

The public API is ``__all__`` (imported lazily: ``import tickline.fix_gateway``
loads nothing else; type checkers see the real types):

- the daemon: :class:`Gateway`, :class:`GatewayConfig`, :func:`load_config`;
- the sans-IO session: :class:`Session`, :class:`SessionConfig`, :class:`State`
  and its events (:class:`LoggedOn`, :class:`LoggedOut`, :class:`LogonRefused`,
  :class:`ApplicationMessage`, :class:`RejectReceived`, :class:`RejectSent`,
  :class:`SequenceReset`, :class:`GapDetected`, :class:`ResendAnswered`,
  :class:`Disconnect`);
- messages: :class:`FixMessage`, :func:`parse`, :func:`encode`, :class:`Framer`;
- stores: :class:`FileStore`, :class:`FileStoreConfig`, :class:`MemoryStore`;
- dictionaries: :func:`load_dictionary`, :class:`Validator`;
- the socket agents: :class:`FixAcceptor`, :class:`FixInitiator` and their configs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tickline._lazy import lazy_exports

_EXPORTS = {
    "Gateway": "gateway",
    "GatewayConfig": "gateway",
    "SessionSpec": "gateway",
    "load_config": "gateway",
    "ConfigError": "config",
    "Session": "session",
    "SessionConfig": "session",
    "State": "session",
    "LoggedOn": "session",
    "LoggedOut": "session",
    "LogonRefused": "session",
    "ApplicationMessage": "session",
    "RejectReceived": "session",
    "RejectSent": "session",
    "SequenceReset": "session",
    "GapDetected": "session",
    "ResendAnswered": "session",
    "Disconnect": "session",
    "FixMessage": "codec",
    "GarbledMessage": "codec",
    "Framer": "codec",
    "encode": "codec",
    "parse": "codec",
    "FileStore": "store",
    "FileStoreConfig": "store",
    "MemoryStore": "store",
    "MessageStore": "store",
    "StoreError": "store",
    "DataDictionary": "dictionary",
    "ValidationConfig": "dictionary",
    "Validator": "dictionary",
    "load_dictionary": "dictionary",
    "AcceptorConfig": "io",
    "FixAcceptor": "io",
    "FixInitiator": "io",
    "InitiatorConfig": "io",
    "hash_password": "auth",
}

# spelled out: type checkers read __all__ only as a literal
__all__ = [
    "AcceptorConfig",
    "ApplicationMessage",
    "ConfigError",
    "DataDictionary",
    "Disconnect",
    "FileStore",
    "FileStoreConfig",
    "FixAcceptor",
    "FixInitiator",
    "FixMessage",
    "Framer",
    "GapDetected",
    "GarbledMessage",
    "Gateway",
    "GatewayConfig",
    "InitiatorConfig",
    "LoggedOn",
    "LoggedOut",
    "LogonRefused",
    "MemoryStore",
    "MessageStore",
    "RejectReceived",
    "RejectSent",
    "ResendAnswered",
    "SequenceReset",
    "Session",
    "SessionConfig",
    "SessionSpec",
    "State",
    "StoreError",
    "ValidationConfig",
    "Validator",
    "encode",
    "hash_password",
    "load_config",
    "load_dictionary",
    "parse",
]

if TYPE_CHECKING:
    from .auth import hash_password
    from .codec import FixMessage, Framer, GarbledMessage, encode, parse
    from .config import ConfigError
    from .dictionary import DataDictionary, ValidationConfig, Validator, load_dictionary
    from .gateway import Gateway, GatewayConfig, SessionSpec, load_config
    from .io import AcceptorConfig, FixAcceptor, FixInitiator, InitiatorConfig
    from .session import (
        ApplicationMessage,
        Disconnect,
        GapDetected,
        LoggedOn,
        LoggedOut,
        LogonRefused,
        RejectReceived,
        RejectSent,
        ResendAnswered,
        SequenceReset,
        Session,
        SessionConfig,
        State,
    )
    from .store import FileStore, FileStoreConfig, MemoryStore, MessageStore, StoreError

if not TYPE_CHECKING:  # a module __getattr__ seen by mypy would type every unknown name as Any
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
