"""Runtime images named by compose files.

Each service's ``image:`` is a base image unless the service has ``build:``
(then the image is one the stack builds).  Values are interpolated the way
compose does it: from the process environment, then the stack's env file.
PyYAML's node tree is used instead of plain ``safe_load`` so every image keeps
its line number for messages and ``reconcile images``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from .dockerfiles import ImageUse
from .errors import InputError, where
from .interpolation import SubstitutionError, substitute
from .refs import InvalidReference, parse


def read_env_file(path: Path, shown_as: str) -> dict[str, str]:
    from dotenv import dotenv_values  # compose's .env syntax, from the maintained package

    if not path.is_file():
        raise InputError(f"env file {path} not found", where=shown_as, hint="create it or remove stack.env_file")
    try:
        return {k: v for k, v in dotenv_values(path, encoding="utf-8").items() if v is not None}
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read env file: {exc}", where=shown_as, hint="check the file") from None


def compose_images(path: Path, env: Mapping[str, str], *, shown_as: str) -> list[ImageUse]:
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read compose file: {exc}", where=shown_as, hint="fix stack.compose") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(
            f"not valid YAML: {getattr(exc, 'problem', exc)}",
            where=where(shown_as, mark.line + 1 if mark else None),
            hint="fix the syntax",
        ) from None
    services = _child(root, "services")
    if services is None:
        return []
    if not isinstance(services, yaml.MappingNode):
        raise InputError(
            "`services` must be a mapping",
            where=where(shown_as, services.start_mark.line + 1),
            hint="fix the compose file",
        )
    uses = []
    for key, service in services.value:
        image = _child(service, "image")
        if image is None or _child(service, "build") is not None or image.tag == "tag:yaml.org,2002:null":
            continue
        line = image.start_mark.line + 1
        if not isinstance(image, yaml.ScalarNode):
            raise InputError(
                f"services.{key.value}.image must be a string", where=where(shown_as, line), hint="fix the compose file"
            )
        try:
            result = substitute(image.value, env, escape="$")
        except SubstitutionError as exc:
            raise InputError(
                str(exc),
                where=where(shown_as, line, f"services.{key.value}.image"),
                hint="set the variable in the environment or the env file",
            ) from None
        try:
            ref = parse(result.value)
        except InvalidReference as exc:
            hint = "fix the image"
            if result.undefined:
                hint = f"{', '.join(result.undefined)} is not set: set it in the environment or the env file, or give a default"
            raise InputError(str(exc), where=where(shown_as, line, f"services.{key.value}.image"), hint=hint) from None
        uses.append(ImageUse(ref, path, line))
    return uses


def _child(node, key: str):
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def interpolation_env(env_file: Path | None, shown_as: str | None) -> dict[str, str]:
    """Compose's precedence: the shell environment wins over the env file."""
    values = read_env_file(env_file, shown_as or str(env_file)) if env_file else {}
    return {**values, **os.environ}
