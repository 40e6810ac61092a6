"""Importing a dependency the project declares, in a test: missing is an error, never a skip.

CI installs every extra (``bash scripts/setup.sh`` does the same locally), so a declared dependency
that does not import means a broken environment; ``pytest.importorskip`` would turn that into a
quietly skipped suite. What is truly optional (a GPU, a file outside the package registry, a package
that only exists for some platforms) stays a skip with its reason where it is used.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str | None = None) -> ModuleType:
    """Import ``module``, which comes with vidthinker's ``extra`` (None: a core dependency); a clear
    ImportError naming the extra and the setup script when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        source = f"vidthinker's [{extra}] extra" if extra else "vidthinker's core dependencies"
        raise ImportError(
            f"{module} is not importable ({error}); it comes with {source}, which the tests need and CI "
            "installs: run `bash scripts/setup.sh` (installs every extra)"
        ) from error
