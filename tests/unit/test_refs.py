"""Image references normalize the way the docker CLI (distribution/reference) does."""

import tomllib
from pathlib import Path

import pytest

from reconciler.refs import ImageRef, InvalidReference, parse, parse_prefix

DIGEST = "sha256:" + "ab" * 32
CORPUS = tomllib.loads((Path(__file__).parents[1] / "cases" / "refs" / "corpus.toml").read_text())


def _case_id(text: str) -> str:
    return repr(text) if len(text) <= 60 else repr(text[:57]) + f"...({len(text)})"


@pytest.mark.parametrize("case", CORPUS["valid"], ids=[_case_id(c["text"]) for c in CORPUS["valid"]])
def test_parse_accepts_corpus_reference_in_normal_form(case):
    ref = parse(case["text"], default_tag=False)
    assert ref.canonical == case["normalized"]
    if "familiar" in case:
        assert ref.familiar == case["familiar"]
    # The normal form means the same reference, and reads back unchanged.
    assert parse(case["normalized"], default_tag=False) == ref
    assert parse(ref.familiar, default_tag=False) == ref
    if ref.tag is None and ref.digest is None:
        assert parse(case["text"]).tag == "latest"


@pytest.mark.parametrize("case", CORPUS["invalid"], ids=[_case_id(c["text"]) for c in CORPUS["invalid"]])
def test_parse_rejects_corpus_reference_with_reason(case):
    with pytest.raises(InvalidReference) as info:
        parse(case["text"])
    message = str(info.value)
    assert case["reason"] in message
    assert "\n" not in message
    assert len(message) < 400


def test_corpus_covers_the_go_tables():
    # A truncated or mis-edited corpus file would otherwise pass quietly.
    assert len(CORPUS["valid"]) > 150
    assert len(CORPUS["invalid"]) > 120


@pytest.mark.parametrize(
    ("text", "familiar", "canonical"),
    [
        ("nginx", "nginx:latest", "docker.io/library/nginx:latest"),
        ("nginx:stable", "nginx:stable", "docker.io/library/nginx:stable"),
        ("docker.io/library/nginx:stable", "nginx:stable", "docker.io/library/nginx:stable"),
        ("docker.io/nginx:stable", "nginx:stable", "docker.io/library/nginx:stable"),
        ("index.docker.io/library/nginx:stable", "nginx:stable", "docker.io/library/nginx:stable"),
        ("index.docker.io/nginx", "nginx:latest", "docker.io/library/nginx:latest"),
        ("osixia/openldap:1.5.0", "osixia/openldap:1.5.0", "docker.io/osixia/openldap:1.5.0"),
        ("docker.io/osixia/openldap:1.5.0", "osixia/openldap:1.5.0", "docker.io/osixia/openldap:1.5.0"),
        # A first component without '.', ':' or "localhost" is a Docker Hub namespace.
        ("registry/tools:1", "registry/tools:1", "docker.io/registry/tools:1"),
        ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
        ("localhost:5000/team/x:1", "localhost:5000/team/x:1", "localhost:5000/team/x:1"),
        ("harbor.test:8443/aihpc/redis:7", "harbor.test:8443/aihpc/redis:7", "harbor.test:8443/aihpc/redis:7"),
        ("quay.io/argoproj/argocd:v2.12.3", "quay.io/argoproj/argocd:v2.12.3", "quay.io/argoproj/argocd:v2.12.3"),
        ("[::1]:5000/x:1", "[::1]:5000/x:1", "[::1]:5000/x:1"),
        (f"redis@{DIGEST}", f"redis@{DIGEST}", f"docker.io/library/redis@{DIGEST}"),
        (f"redis:7@{DIGEST}", f"redis:7@{DIGEST}", f"docker.io/library/redis:7@{DIGEST}"),
        (f"quay.io/a/b@{DIGEST}", f"quay.io/a/b@{DIGEST}", f"quay.io/a/b@{DIGEST}"),
        ("redis:" + "t" * 128, "redis:" + "t" * 128, "docker.io/library/redis:" + "t" * 128),
        ("gitea/gitea:1.22.3-rootless", "gitea/gitea:1.22.3-rootless", "docker.io/gitea/gitea:1.22.3-rootless"),
        ("a__b/c.d-e---f:1", "a__b/c.d-e---f:1", "docker.io/a__b/c.d-e---f:1"),
    ],
)
def test_parse_normalizes_like_docker(text, familiar, canonical):
    ref = parse(text)
    assert ref.familiar == familiar
    assert str(ref) == familiar
    assert ref.canonical == canonical


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("index.docker.io/library/redis:7", "redis:7"),
        ("docker.io/osixia/openldap:1.5.0", "osixia/openldap:1.5.0"),
    ],
)
def test_parse_equal_references_compare_equal(a, b):
    assert parse(a) == parse(b)
    assert hash(parse(a)) == hash(parse(b))


def test_parse_keeps_library_prefix_in_path():
    ref = parse("redis:7")
    assert ref == ImageRef("docker.io", "library/redis", "7", None)
    assert ref.name == "docker.io/library/redis"
    assert ref.familiar_name == "redis"
    assert ref.hub_path == "redis"


def test_parse_digest_only_gets_no_default_tag():
    ref = parse(f"redis@{DIGEST}")
    assert ref.tag is None
    assert ref.digest == DIGEST
    assert ref.is_digest


def test_parse_without_default_tag_leaves_tag_empty():
    assert parse("redis", default_tag=False).tag is None
    assert parse("redis:7", default_tag=False).tag == "7"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("Nginx", "lowercase"),
        ("library/Nginx:1", "lowercase"),
        ("quay.io/Argoproj/argocd:v2", "lowercase"),
        ("redis:7 ", "white space"),
        (" redis:7", "white space"),
        ("red is:7", "white space"),
        ("redis:\t7", "white space"),
        ("redis:-bad", "bad tag"),
        ("redis:.bad", "bad tag"),
        ("redis:", "bad tag"),
        ("redis:" + "t" * 129, "bad tag"),
        ("redis@sha256:abc", "bad digest"),
        ("redis@md5", "bad digest"),
        ("redis@", "bad digest"),
        (":7", "missing repository name"),
        ("redis/", "bad repository name"),
        ("re--dis/-x", "bad repository name"),
        ("a//b", "bad repository name"),
        ("harbor_test.io:80/x", "bad registry host"),
        ("x/" + "a" * 260, "longer than 255"),
        ("redis@sha256:" + "AB" * 32, "64 lower-case hex digits"),
        ("redis@sha256:" + "ab" * 33, "64 lower-case hex digits"),
        ("redis@sha512:" + "ab" * 32, "128 lower-case hex digits"),
        ("redis@md5:" + "ab" * 16, "unsupported digest algorithm 'md5'"),
    ],
)
def test_parse_rejects_invalid_reference(text, reason):
    with pytest.raises(InvalidReference, match=reason):
        parse(text)


def test_parse_length_limit_counts_the_path_not_the_registry_host():
    # reference.go: len(path) > 255, where docker.io/library/ adds "library/" to the path only.
    assert parse("x/" + "a" * 253).path == "x/" + "a" * 253
    assert parse("a" * 247).path == "library/" + "a" * 247
    with pytest.raises(InvalidReference, match="longer than 255"):
        parse("a" * 248)


def test_parse_error_shows_long_reference_shortened():
    with pytest.raises(InvalidReference) as info:
        parse("redis:" + "t" * 500)
    assert len(str(info.value)) < 300


def test_familiar_keeps_library_prefix_of_nested_hub_path():
    # normalize.go familiarizeName: docker.io/library/foo/bar is not docker.io/foo/bar.
    ref = parse("docker.io/library/foo/bar:1")
    assert ref.familiar == "library/foo/bar:1"
    assert ref.hub_path == "library/foo/bar"
    assert parse(ref.familiar) == ref
    assert ref.aliased("localhost").relative_to("localhost") == ref
    assert ref.aliased("localhost") != parse("foo/bar:1").aliased("localhost")


def test_parse_rejects_64_hex_repository_name_like_docker():
    # distribution/reference ParseNormalizedNamed: "cannot specify 64-byte hexadecimal strings"
    with pytest.raises(InvalidReference):
        parse("ab" * 32)


def test_invalid_reference_is_a_value_error_with_one_line():
    with pytest.raises(ValueError) as info:
        parse("Nginx:1")
    assert "\n" not in str(info.value)
    assert "'Nginx:1'" in str(info.value)


@pytest.mark.parametrize(
    ("text", "prefix", "expected"),
    [
        ("redis:7", "harbor.test/aihpc", "harbor.test/aihpc/redis:7"),
        ("docker.io/library/redis:7", "harbor.test/aihpc/", "harbor.test/aihpc/redis:7"),
        ("osixia/openldap:1.5.0", "harbor.test/aihpc", "harbor.test/aihpc/osixia/openldap:1.5.0"),
        ("quay.io/argoproj/argocd:v2", "harbor.test/aihpc", "harbor.test/aihpc/argoproj/argocd:v2"),
        ("redis:7", "127.0.0.1:5552", "127.0.0.1:5552/redis:7"),
        (f"redis@{DIGEST}", "harbor.test/aihpc", f"harbor.test/aihpc/redis@{DIGEST}"),
    ],
)
def test_under_moves_reference_below_registry_prefix(text, prefix, expected):
    assert parse(text).under(prefix) == parse(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis:7", "localhost/redis:7"),
        ("docker.io/library/redis:7", "localhost/redis:7"),
        ("osixia/openldap:1.5.0", "localhost/osixia/openldap:1.5.0"),
        ("quay.io/argoproj/argocd:v2", "localhost/quay.io/argoproj/argocd:v2"),
        (f"redis@{DIGEST}", f"localhost/redis@{DIGEST}"),
    ],
)
def test_aliased_keeps_registry_host_below_prefix(text, expected):
    assert parse(text).aliased("localhost") == parse(expected)
    assert parse(text).aliased("localhost/") == parse(expected)


def test_aliased_keeps_hub_and_quay_apart():
    assert parse("argoproj/argocd:v2").aliased("localhost") != parse("quay.io/argoproj/argocd:v2").aliased("localhost")


@pytest.mark.parametrize(
    "text",
    ["redis:7", "osixia/openldap:1.5.0", "quay.io/argoproj/argocd:v2", f"redis:7@{DIGEST}", "nginx"],
)
def test_relative_to_undoes_aliased(text):
    ref = parse(text)
    alias = ref.aliased("localhost")
    assert alias.is_under("localhost")
    assert alias.relative_to("localhost") == ref


def test_relative_to_strips_prefix_with_path():
    assert parse("harbor.test/aihpc/argoproj/argocd:v2").relative_to("harbor.test/aihpc/") == parse(
        "argoproj/argocd:v2"
    )


@pytest.mark.parametrize(
    ("text", "prefix", "expected"),
    [
        ("harbor.test/aihpc/redis:7", "harbor.test/aihpc", True),
        ("harbor.test/aihpc/redis:7", "harbor.test/aihpc/", True),
        ("harbor.test/aihpc/redis:7", "harbor.test", True),
        ("harbor.test/aihpc2/redis:7", "harbor.test/aihpc", False),
        ("harbor.test.other/aihpc/redis:7", "harbor.test", False),
        ("harbor.test/aihpc", "harbor.test/aihpc", False),
        ("localhost/redis:7", "localhost", True),
        ("redis:7", "localhost", False),
        ("localhost:5000/redis:7", "localhost", False),
    ],
)
def test_is_under_matches_whole_path_components(text, prefix, expected):
    assert parse(text).is_under(prefix) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("aiharbor.msxf.local/aihpc", "aiharbor.msxf.local/aihpc"),
        ("aiharbor.msxf.local/aihpc/", "aiharbor.msxf.local/aihpc"),
        (" localhost ", "localhost"),
        ("127.0.0.1:5552/aihpc", "127.0.0.1:5552/aihpc"),
        ("harbor.test", "harbor.test"),
    ],
)
def test_parse_prefix_returns_prefix_without_trailing_slash(text, expected):
    assert parse_prefix(text) == expected


@pytest.mark.parametrize("text", ["", "Harbor Test/x", "harbor.test/AIHPC", "harbor.test//x", "harbor.test/x:1", "/x"])
def test_parse_prefix_rejects_invalid_prefix(text):
    with pytest.raises(InvalidReference, match="invalid registry prefix"):
        parse_prefix(text)


def test_familiar_of_hub_64_hex_name_stays_parseable():
    # Bare, a 64-hex name is an image ID to docker; the engine pulls by familiar_name.
    ref = parse("docker.io/" + "ab" * 32)
    assert ref.familiar_name == "library/" + "ab" * 32
    assert parse(ref.familiar) == ref
