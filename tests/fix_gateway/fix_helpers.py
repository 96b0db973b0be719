"""Helpers the FIX gateway's daemon tests share: the topology text of an acceptor and its
sessions, and the clients of those sessions."""

from __future__ import annotations

from typing import Any

from tickline.fix_gateway.io import FixInitiator, InitiatorConfig
from tickline.fix_gateway.session import LoggedOn, SessionConfig

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


def logged_on_clients(loop: Any, port: int, timeout: float) -> tuple[FixInitiator, dict[str, list[object]]]:
    """A FixInitiator holding the client side of every session of ``SESSIONS`` (target -> GW on
    127.0.0.1:``port``), added to ``loop`` and run until all are logged on (at most ``timeout`` s):
    (initiator, events by session id, e.g. ``FIX.4.4:C1->GW``)."""
    events: dict[str, list[object]] = {f"{begin_string}:{target}->GW": [] for target, (begin_string, _) in SESSIONS.items()}
    ini = FixInitiator(InitiatorConfig(reconnect_min_s=0.05), on_event=lambda sid, e: events[sid].append(e))
    for target, (begin_string, _) in SESSIONS.items():
        ini.add_session(SessionConfig(sender_comp_id=target, target_comp_id="GW", role="initiator",
                                      begin_string=begin_string), port=port)
    loop.add(ini)
    loop.run_until(lambda: all(any(isinstance(e, LoggedOn) for e in ev) for ev in events.values()), timeout=timeout,
                   what="both sessions logged on")
    return ini, events
