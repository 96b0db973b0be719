"""tickline.schemas: the SBE XML schemas tickline itself speaks (load with tickline.codecs.load_builtin)."""
