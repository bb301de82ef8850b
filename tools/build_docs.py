"""Build the SDK's API reference (HTML, pdoc) from its docstrings: ``make docs``.

``python tools/build_docs.py OUTPUT_DIR``. Only :mod:`arbsphere.sdk` is documented — its
``__all__`` is the public API; its submodules are implementation. pdoc renders offline (no
network: its CSS, JS and search index are written beside the pages).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pdoc
import pdoc.render

#: what the reference covers (pdoc's module specs: "!" excludes)
MODULES = ("arbsphere.sdk", "!arbsphere.sdk.links", "!arbsphere.sdk.device_loop")


def build(out: Path) -> Path:
    """Render the reference into ``out``; the SDK page's path."""
    pdoc.render.configure(docformat="restructuredtext", show_source=False)
    pdoc.pdoc(*MODULES, output_directory=out)
    return out / "arbsphere" / "sdk.html"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tools/build_docs.py OUTPUT_DIR")
    page = build(Path(sys.argv[1]))
    print(f"API reference: {page}")
