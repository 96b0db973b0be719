"""tickline.fix_gateway: FIX session layer (sans-IO), message store, data
dictionaries, acceptor/initiator agents and the FIX <-> SBE bridge."""
