"""Sphinx configuration of the hepx documentation (``python -m sphinx -W -b html docs OUT``).

The configuration and command-line reference pages are generated here from the code (the
config schemas and the ``hepx`` argument parser), so they cannot drift from it.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))

import generate  # noqa: E402  (docs/generate.py, next to this file)

import hepx  # noqa: E402

project = "hepx"
author = "hepx developers"
copyright = "2026, hepx developers"
release = version = hepx.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.intersphinx",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "results/**", "README.md"]
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3

autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autosummary_generate = False
napoleon_google_docstring = True
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True  # attributes as fields: no second description beside autodoc's
python_use_unqualified_type_names = True
# Cross-references to types the docs do not document (numpy, torch, awkward, ...) stay plain
# text; nitpicky mode is off for that reason.
nitpicky = False
suppress_warnings = ["myst.xref_missing", "myst.header"]

intersphinx_mapping = {}  # offline builds: no inventories fetched

html_theme = "furo"
html_title = f"hepx {release}"
html_static_path: list[str] = []


def setup(app):
    app.connect("builder-inited", lambda app: generate.write_all(DOCS / "reference" / "_generated"))
