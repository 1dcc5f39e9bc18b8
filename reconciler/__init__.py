"""reconcile: keep a Docker host's images exactly as a stack declares them."""

from .errors import EngineError, InputError, ReconcileError
from .pipeline import Run, apply, plan, prepare

__all__ = ["EngineError", "InputError", "ReconcileError", "Run", "apply", "plan", "prepare"]
__version__ = "0.2.0"
