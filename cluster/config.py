"""Configuration of the consensus core, validated up front.

One frozen object per component; every option can also come from the
environment as ``TICKLINE_CLUSTER_<OPTION>`` (see :meth:`ConsensusConfig.from_env`).
Times are in the unit of the ``now`` passed to ``Consensus.tick`` (milliseconds
in the node shell and the simulator).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from .errors import ConfigError

__all__ = ["ConsensusConfig"]


@dataclass(frozen=True)
class ConsensusConfig:
    member_id: int
    members: tuple[int, ...]
    election_timeout_min: int = 150
    election_timeout_max: int = 300
    heartbeat_interval: int = 50
    max_append_bytes: int = 64 * 1024
    # bytes of snapshot per InstallSnapshot message; a transport must carry a
    # message this large plus a small header (Aeron: term length / 8)
    snapshot_chunk_bytes: int = 256 * 1024

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", tuple(self.members))
        ids = self.members
        if not ids:
            raise ConfigError("invalid cluster config", key="members", value="()", expected="at least one member id")
        if len(set(ids)) != len(ids):
            raise ConfigError("invalid cluster config", key="members", value=",".join(map(str, ids)), expected="distinct member ids")
        for member in ids:
            if not isinstance(member, int) or isinstance(member, bool) or member < 0:
                raise ConfigError("invalid cluster config", key="members", value=repr(member), expected="non-negative integer member ids")
        if self.member_id not in ids:
            raise ConfigError("invalid cluster config", key="member_id", value=self.member_id, expected="one of " + ",".join(map(str, ids)))
        for name in ("election_timeout_min", "election_timeout_max", "heartbeat_interval", "max_append_bytes", "snapshot_chunk_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError("invalid cluster config", key=name, value=value, expected="positive integer")
        if self.election_timeout_max <= self.election_timeout_min:
            raise ConfigError(
                "invalid cluster config", key="election_timeout_max", value=self.election_timeout_max,
                expected=f">election_timeout_min={self.election_timeout_min}",
            )
        # A follower must hear several heartbeats per election timeout or it
        # will start elections against a healthy leader on ordinary jitter.
        if self.heartbeat_interval * 2 > self.election_timeout_min:
            raise ConfigError(
                "invalid cluster config", key="heartbeat_interval", value=self.heartbeat_interval,
                expected=f"<=election_timeout_min/2={self.election_timeout_min // 2}",
            )

    @property
    def quorum(self) -> int:
        return len(self.members) // 2 + 1

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> "ConsensusConfig":
        """Build a config from ``TICKLINE_CLUSTER_*`` variables, then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            key = "TICKLINE_CLUSTER_" + f.name.upper()
            if key not in env:
                continue
            raw = env[key]
            try:
                if f.name == "members":
                    values[f.name] = tuple(int(x) for x in raw.split(",") if x.strip())
                else:
                    values[f.name] = int(raw)
            except ValueError:
                raise ConfigError("invalid cluster config", key=key, value=raw, expected="integer" if f.name != "members" else "comma-separated integers") from None
        values.update(overrides)
        try:
            return cls(**values)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ConfigError("invalid cluster config", key="fields", value=str(exc), expected="member_id and members") from None
