"""Make ``tickline.cluster`` importable when pytest runs from the repository root.

``python -m pytest`` puts the current directory first on ``sys.path``, so the
root's ``tickline/`` folder (which holds only the package's own files) shadows
the installed or shimmed package whose subpackages are the root's sibling
folders (ARCHITECTURE.md, "Layout").  Extending ``tickline.__path__`` with the root
reproduces the ``pyproject.toml`` mapping for this test session only.
"""

import importlib.util
import os

import tickline

if importlib.util.find_spec("tickline.cluster") is None:
    tickline.__path__.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
