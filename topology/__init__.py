"""tickline.topology: one TOML file for a whole deployment (its schema and
validation), ``tickline up`` / ``tickline status`` and ``tickline demo``."""
