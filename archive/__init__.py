"""tickline.archive: stream recording and replay (not built yet; see the issues)."""
