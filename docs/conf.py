"""Sphinx configuration of the bandsynth documentation.

Build with ``sphinx-build -W --keep-going -b html docs docs/_build/html``
(``.ci/docs`` does that and then checks the pages in a headless browser).

The build is offline: intersphinx links to other projects' documentation are
made only when ``BANDSYNTH_DOCS_INTERSPHINX=1`` (the inventories are fetched
from the web).  Pages generated at build time -- one page per shipped model
card and the command-line reference -- go to ``docs/generated/``; the API
stubs to ``docs/api/``; the rendered gallery to ``docs/auto_examples/``.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
# The gallery runs on the CPU; a couple of intra-op threads is all CI has.
os.environ.setdefault("OMP_NUM_THREADS", "2")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import bandsynth  # noqa: E402

# -- project -------------------------------------------------------------------------
project = "bandsynth"
author = "bandsynth developers"
copyright = "bandsynth developers"
release = bandsynth.__version__
version = ".".join(release.split(".")[:2])

# -- general -------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_automodapi.automodapi",
    "sphinx_automodapi.smart_resolver",
    "sphinx_gallery.gen_gallery",
    "bandsynth_docs",
]
if os.environ.get("BANDSYNTH_DOCS_INTERSPHINX") == "1":
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3/", None),
        "numpy": ("https://numpy.org/doc/stable/", None),
        "scipy": ("https://docs.scipy.org/doc/scipy/", None),
        "matplotlib": ("https://matplotlib.org/stable/", None),
        "astropy": ("https://docs.astropy.org/en/stable/", None),
        "reproject": ("https://reproject.readthedocs.io/en/stable/", None),
        "photutils": ("https://photutils.readthedocs.io/en/stable/", None),
        "torch": ("https://pytorch.org/docs/stable/", None),
        "dask": ("https://docs.dask.org/en/stable/", None),
    }

root_doc = "index"
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "auto_examples/*.ipynb", "auto_examples/*.py"]
# Names in single back-quotes are cross-references to Python objects; a name that
# resolves nowhere (another project's object, offline) is shown as code, not a warning.
default_role = "obj"
nitpicky = False
templates_path = []

# -- API reference -------------------------------------------------------------------
automodapi_toctreedirnm = "api"
automodapi_inheritance_diagram = False  # needs graphviz; the class pages list their bases
automodsumm_inherited_members = False
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
autodoc_typehints = "none"
# The package namespace re-exports names documented in their own modules too; viewcode
# must link each source line to the page of its own module, not follow the re-export
# (which gives source links to anchors that do not exist).
viewcode_follow_imported_members = False
autoclass_content = "both"

# -- gallery -------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "image_scrapers": ("matplotlib", "bandsynth_docs.figure_scraper"),
    "reset_modules": ("matplotlib", "bandsynth_docs.reset_figure_scraper"),
    "within_subsection_order": "bandsynth_docs.ExampleOrder",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "default_thumb_file": None,
    "matplotlib_animations": False,
    "capture_repr": ("_repr_html_", "__repr__"),
    "min_reported_time": 1,
    # The examples are short and self-contained; no links to a code index.
    "doc_module": (),
    "backreferences_dir": None,
}

# -- HTML ----------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"bandsynth {release}"
html_theme_options = {
    "navigation_depth": 2,
    "show_nav_level": 1,
    "show_toc_level": 2,
    "use_edit_page_button": False,
    "navbar_align": "left",
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
}
# The user-guide pages stand alone: no empty section navigation beside them.
html_sidebars = {
    page: []
    for page in (
        "index", "getting_started", "bands_and_stacks", "translating", "uncertainty", "evaluating",
        "models", "training", "batch", "command_line", "fits_format", "limitations", "citing", "cli", "changes",
    )
}
html_static_path = ["_static"] if (HERE / "_static").is_dir() else []
html_last_updated_fmt = None
html_show_sourcelink = True
html_copy_source = True
