"""Helpers the FIX gateway's daemon tests share: the topology text of an acceptor and its sessions."""

from __future__ import annotations

# The sessions the daemon tests configure: target comp id -> (BeginString, transport dictionary).
SESSIONS = {"C1": ("FIX.4.4", "FIX44"), "C2": ("FIX.4.2", "FIX42")}


def acceptor_toml(port: int, targets: tuple[str, ...] = ("C1", "C2")) -> str:
    """TOML: the gateway's acceptor on 127.0.0.1:``port`` and an acceptor session GW <- target for each
    of ``targets`` (keys of ``SESSIONS``)."""
    parts = [f'[fix_gateway.acceptor]\nhost = "127.0.0.1"\nport = {port}\n']
    for target in targets:
        begin_string, dictionary = SESSIONS[target]
        parts.append(f'[[fix_gateway.sessions]]\nrole = "acceptor"\nsender_comp_id = "GW"\ntarget_comp_id = "{target}"\n'
                     f'begin_string = "{begin_string}"\ntransport_dictionary = "{dictionary}"\n')
    return "\n".join(parts)
