"""The one normalized image reference type.

Both sides of every comparison (what the Dockerfiles ask for, what the daemon
reports) go through :func:`parse` first, so ``docker.io/library/nginx`` and
``nginx:latest`` are the same thing everywhere.

Written by hand because no maintained Python package implements the
distribution/reference grammar; the regular expressions below are transcribed
from ``github.com/distribution/reference`` (regexp.go, normalize.go,
reference.go) and the digest rules from ``github.com/opencontainers/go-digest``
(algorithm.go), which that package calls to validate a digest.
tests/cases/refs/corpus.toml holds the Go projects' own test tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
DOMAIN_RE = re.compile(_DOMAIN)
TAG_RE = re.compile(_TAG, re.ASCII)
DIGEST_RE = re.compile(_DIGEST)
_WHITE_SPACE = re.compile(r"\s")  # str.isspace's set: sre's Unicode \s is Py_UNICODE_ISSPACE
IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")
# reference.go RepositoryNameTotalLengthMax: counts the path only, not the registry host
# (docker.io/library/ + 247 characters is the longest official name).
PATH_LENGTH_MAX = 255
# The grammar above admits any algorithm name and 32+ hex digits of either case;
# go-digest then accepts only the algorithms it registers, each with its exact
# length in lower-case hex.
DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


class InvalidReference(ValueError):
    """The text is not a valid image reference; the message says why."""


@dataclass(frozen=True, order=True)
class ImageRef:
    """A fully normalized reference: ``domain/path[:tag][@digest]``.

    ``path`` keeps Docker Hub's ``library/`` prefix; :attr:`familiar` drops it
    again the way the docker CLI displays names.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The canonical repository name, ``docker.io/library/redis``."""
        return f"{self.domain}/{self.path}"

    @property
    def _hub_short_path(self) -> str:
        # normalize.go familiarizeName: drop "library/" only when one component is
        # left, since "library/foo/bar" and "foo/bar" are different repositories.
        # Unlike docker, keep it before a 64-hex name: bare, that reads as an image ID,
        # and the short name is what the engine is asked to pull and tag.
        rest = self.path.removeprefix(OFFICIAL_REPO_PREFIX)
        return rest if "/" not in rest and not IDENTIFIER_RE.fullmatch(rest) else self.path

    @property
    def familiar_name(self) -> str:
        """The repository as the docker CLI shows it: ``redis``, ``osixia/openldap``."""
        if self.domain == DEFAULT_DOMAIN:
            return self._hub_short_path
        return self.name

    @property
    def hub_path(self) -> str:
        """The repository path without its registry host, as a registry mirror stores it:
        ``redis`` for Docker Hub's official images, ``argoproj/argocd`` for quay.io's."""
        return self._hub_short_path if self.domain == DEFAULT_DOMAIN else self.path

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    @property
    def familiar(self) -> str:
        """``redis:7-alpine``, ``quay.io/argoproj/argocd:v2``: the name users write."""
        return self.familiar_name + self._suffix()

    def __str__(self) -> str:
        return self.familiar

    @property
    def canonical(self) -> str:
        return self.name + self._suffix()

    @property
    def is_digest(self) -> bool:
        return self.digest is not None

    def under(self, prefix: str) -> ImageRef:
        """This reference moved below ``prefix`` (a registry host with an optional
        path): ``under("harbor/aihpc")`` of ``quay.io/argoproj/argocd:v2`` is
        ``harbor/aihpc/argoproj/argocd:v2``."""
        return parse(f"{prefix.rstrip('/')}/{self.hub_path}{self._suffix()}")

    def renamed(self, name: str) -> ImageRef:
        """The same tag or digest on the repository ``name``: ``renamed("harbor/aihpc/argocd")``
        of ``quay.io/argoproj/argocd:v2`` is ``harbor/aihpc/argocd:v2``."""
        return parse(name + self._suffix())

    def aliased(self, prefix: str) -> ImageRef:
        """The alias of this reference below ``prefix``, keeping any registry host so
        that ``quay.io/x/y`` and Docker Hub's ``x/y`` never share an alias:
        ``localhost/redis:7``, ``localhost/quay.io/argoproj/argocd:v2``."""
        return parse(f"{prefix.rstrip('/')}/{self.familiar}")

    def is_under(self, prefix: str) -> bool:
        return self.name.startswith(prefix.rstrip("/") + "/")

    def relative_to(self, prefix: str) -> ImageRef:
        """Undo :meth:`aliased`: ``localhost/redis:7`` relative to ``localhost`` is ``redis:7``."""
        rest = self.name[len(prefix.rstrip("/")) + 1 :]
        return parse(rest + self._suffix())


def _split_domain(name: str) -> tuple[str, str]:
    # normalize.go splitDockerDomain: the first component is a registry host
    # only if it looks like one (has '.' or ':', or is 'localhost', or has
    # upper case letters, which a path never has).
    first, sep, rest = name.partition("/")
    if not sep or (not any(c in first for c in ".:") and first != "localhost" and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def _shown(text: str) -> str:
    # Error messages stay one readable line even for a 300-character reference.
    return repr(text) if len(text) <= 100 else repr(text[:100]) + "..."


def _check_digest(text: str, digest: str) -> None:
    where = f"invalid reference {_shown(text)}"
    if not DIGEST_RE.fullmatch(digest):
        raise InvalidReference(f"{where}: bad digest {_shown(digest)}")
    algorithm, _, hex_digits = digest.partition(":")
    length = DIGEST_HEX_LENGTHS.get(algorithm)
    if length is None:
        raise InvalidReference(
            f"{where}: unsupported digest algorithm {_shown(algorithm)} (use sha256, sha384 or sha512)"
        )
    if len(hex_digits) != length or hex_digits.lower() != hex_digits:
        raise InvalidReference(
            f"{where}: bad digest {_shown(digest)}: {algorithm} needs {length} lower-case hex digits"
        )


def parse(text: str, *, default_tag: bool = True) -> ImageRef:
    """Parse and normalize a reference as the docker CLI does (ParseNormalizedNamed).

    With ``default_tag`` a reference with neither tag nor digest gets ``:latest``.
    Raises :class:`InvalidReference` with a short reason.

    One deliberate difference: a first component with a '.' and a '_' (``a_b.io/x``)
    is no registry host, and docker then keeps the whole name with no registry at
    all, which nothing can pull; it is refused here as a bad registry host.
    """
    if not text:
        raise InvalidReference("empty image reference")
    if _WHITE_SPACE.search(text):
        raise InvalidReference(f"invalid reference {_shown(text)}: contains white space")
    if IDENTIFIER_RE.fullmatch(text):
        raise InvalidReference(f"invalid reference {_shown(text)}: cannot specify 64-byte hexadecimal strings")
    remainder = text
    digest = None
    if "@" in remainder:
        remainder, digest = remainder.split("@", 1)
        _check_digest(text, digest)
    tag = None
    # A ':' after the last '/' separates the tag; one before it is a port.
    colon = remainder.rfind(":")
    if colon > remainder.rfind("/"):
        remainder, tag = remainder[:colon], remainder[colon + 1 :]
        if not TAG_RE.fullmatch(tag):
            raise InvalidReference(f"invalid reference {_shown(text)}: bad tag {_shown(tag)}")
    if not remainder:
        raise InvalidReference(f"invalid reference {_shown(text)}: missing repository name")
    domain, path = _split_domain(remainder)
    if not DOMAIN_RE.fullmatch(domain):
        raise InvalidReference(f"invalid reference {_shown(text)}: bad registry host {_shown(domain)}")
    if path.lower() != path:
        raise InvalidReference(f"invalid reference {_shown(text)}: repository name must be lowercase")
    if not PATH_RE.fullmatch(path):
        raise InvalidReference(f"invalid reference {_shown(text)}: bad repository name {_shown(path)}")
    if len(path) > PATH_LENGTH_MAX:
        raise InvalidReference(
            f"invalid reference {_shown(text)}: repository path longer than {PATH_LENGTH_MAX} characters"
        )
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return ImageRef(domain, path, tag, digest)


def parse_prefix(text: str) -> str:
    """Validate a registry prefix such as ``aiharbor.msxf.local/aihpc`` or
    ``localhost`` and return it without a trailing slash."""
    prefix = text.strip().rstrip("/")
    try:
        probe = parse(f"{prefix}/x")
    except InvalidReference:
        raise InvalidReference(f"invalid registry prefix {_shown(text)}: expected HOST[:PORT][/PATH]") from None
    # Canonical form, so prefix comparisons see what parse() sees: index.docker.io/p → docker.io/p.
    return probe.name[: -len("/x")]
