"""reconcile: keep a Docker host's images exactly as a stack declares them.

The library is :mod:`reconciler.pipeline` (``prepare``, ``plan``, ``apply``); importing
the package itself loads nothing else, so the command line starts fast.
"""

from .errors import EngineError, InputError, ReconcileError

__all__ = ["EngineError", "InputError", "ReconcileError", "__version__"]
__version__ = "0.2.0"  # the one source: pyproject.toml reads it (setuptools' dynamic version)
