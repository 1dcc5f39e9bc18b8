"""Env files (``.env``): compose's syntax, read with the maintained package (python-dotenv).

Apart from compose.py so that a stack without compose files never imports a YAML parser.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError


def read_env_file(path: Path, shown_as: str) -> dict[str, str]:
    from dotenv import dotenv_values

    if not path.is_file():
        raise InputError(f"env file {path} not found", where=shown_as, hint="create it or remove stack.env_file")
    try:
        return {k: v for k, v in dotenv_values(path, encoding="utf-8").items() if v is not None}
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read env file: {exc}", where=shown_as, hint="check the file") from None


def interpolation_env(env_file: Path | None, shown_as: str | None) -> dict[str, str]:
    """Compose's precedence: the shell environment wins over the env file."""
    values = read_env_file(env_file, shown_as or str(env_file)) if env_file else {}
    return {**values, **os.environ}
