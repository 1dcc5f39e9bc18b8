"""Desired state: which images must be present and which aliases point where."""

import textwrap
from pathlib import Path

import pytest

from reconciler.desired import Alias, BaseImage, base_images, desired_state
from reconciler.dockerfiles import ImageUse
from reconciler.errors import InputError
from reconciler.network import NetworkDecision
from reconciler.refs import parse
from reconciler.stack import load

REGISTRY = "harbor.test/aihpc"
DIGEST = "sha256:" + "cd" * 32


def _network(mode: str, registry: str = REGISTRY) -> NetworkDecision:
    return NetworkDecision(
        mode=mode, source="test", registry=registry, registry_source="test", alias_prefix="localhost"
    )


def _bases(*texts: str) -> list[BaseImage]:
    return [BaseImage(parse(t), (ImageUse(parse(t), Path("src/app/Dockerfile"), n + 1),)) for n, t in enumerate(texts)]


def _presence(state):
    return {p.ref.familiar: [r.familiar for r in p.serves] for p in state.presence}


def _aliases(state):
    return {a.alias.familiar: a.source.familiar for a in state.aliases}


def test_desired_state_internal_pulls_from_registry_and_aliases_both_names():
    state = desired_state(_bases("redis:7-alpine", "quay.io/argoproj/argocd:v2"), _network("internal"))
    assert _presence(state) == {
        "harbor.test/aihpc/redis:7-alpine": ["redis:7-alpine"],
        "harbor.test/aihpc/argoproj/argocd:v2": ["quay.io/argoproj/argocd:v2"],
    }
    assert _aliases(state) == {
        "redis:7-alpine": "harbor.test/aihpc/redis:7-alpine",
        "localhost/redis:7-alpine": "harbor.test/aihpc/redis:7-alpine",
        "quay.io/argoproj/argocd:v2": "harbor.test/aihpc/argoproj/argocd:v2",
        "localhost/quay.io/argoproj/argocd:v2": "harbor.test/aihpc/argoproj/argocd:v2",
    }
    assert state.warnings == []


def test_desired_state_alias_remembers_its_base():
    state = desired_state(_bases("redis:7-alpine"), _network("internal"))
    assert state.aliases[0] == Alias(
        alias=parse("redis:7-alpine"), source=parse("harbor.test/aihpc/redis:7-alpine"), base=parse("redis:7-alpine")
    )


def test_desired_state_external_pulls_upstream_and_aliases_under_prefix():
    state = desired_state(_bases("redis:7-alpine", "quay.io/argoproj/argocd:v2"), _network("external"))
    assert _presence(state) == {
        "redis:7-alpine": ["redis:7-alpine"],
        "quay.io/argoproj/argocd:v2": ["quay.io/argoproj/argocd:v2"],
    }
    assert _aliases(state) == {
        "localhost/redis:7-alpine": "redis:7-alpine",
        "localhost/quay.io/argoproj/argocd:v2": "quay.io/argoproj/argocd:v2",
    }


@pytest.mark.parametrize("mode", ["internal", "external"])
def test_desired_state_ref_under_internal_registry_is_only_present(mode):
    state = desired_state(_bases("harbor.test/aihpc/tools/kubectl:1.30"), _network(mode))
    assert _presence(state) == {"harbor.test/aihpc/tools/kubectl:1.30": ["harbor.test/aihpc/tools/kubectl:1.30"]}
    assert state.aliases == []


def test_desired_state_dockerfile_using_the_alias_internal():
    state = desired_state(_bases("localhost/redis:7"), _network("internal"))
    assert _presence(state) == {"harbor.test/aihpc/redis:7": ["localhost/redis:7"]}
    assert _aliases(state) == {
        "redis:7": "harbor.test/aihpc/redis:7",
        "localhost/redis:7": "harbor.test/aihpc/redis:7",
    }


def test_desired_state_dockerfile_using_the_alias_external():
    state = desired_state(_bases("localhost/redis:7"), _network("external"))
    assert _presence(state) == {"redis:7": ["localhost/redis:7"]}
    assert _aliases(state) == {"localhost/redis:7": "redis:7"}


def test_desired_state_alias_and_upstream_share_one_pull():
    state = desired_state(_bases("redis:7", "localhost/redis:7"), _network("internal"))
    assert _presence(state) == {"harbor.test/aihpc/redis:7": ["redis:7", "localhost/redis:7"]}
    assert _aliases(state) == {
        "redis:7": "harbor.test/aihpc/redis:7",
        "localhost/redis:7": "harbor.test/aihpc/redis:7",
    }


def test_desired_state_alias_of_an_internal_registry_ref():
    state = desired_state(_bases("localhost/harbor.test/aihpc/redis:7"), _network("internal"))
    assert _presence(state) == {"harbor.test/aihpc/redis:7": ["localhost/harbor.test/aihpc/redis:7"]}
    assert _aliases(state) == {"localhost/harbor.test/aihpc/redis:7": "harbor.test/aihpc/redis:7"}


def test_desired_state_digest_pinned_external_is_present_by_digest_with_warning():
    state = desired_state(_bases(f"redis@{DIGEST}"), _network("external"))
    assert _presence(state) == {f"redis@{DIGEST}": [f"redis@{DIGEST}"]}
    assert state.aliases == []
    [warning] = state.warnings
    assert "pinned by digest" in warning
    assert f"localhost/redis@{DIGEST}" in warning
    assert "src/app/Dockerfile:1" in warning


def test_desired_state_digest_pinned_internal_is_present_by_digest_with_warnings():
    state = desired_state(_bases(f"redis:7@{DIGEST}"), _network("internal"))
    assert _presence(state) == {f"harbor.test/aihpc/redis:7@{DIGEST}": [f"redis:7@{DIGEST}"]}
    assert state.aliases == []
    assert len(state.warnings) == 2
    assert all("pinned by digest" in w for w in state.warnings)


def test_desired_state_clash_in_internal_registry_is_input_error():
    bases = _bases("quay.io/argoproj/argocd:v2", "argoproj/argocd:v2")
    with pytest.raises(InputError) as info:
        desired_state(bases, _network("internal"))
    message = str(info.value)
    assert "\n" not in message
    assert (
        "quay.io/argoproj/argocd:v2 and argoproj/argocd:v2 both map to harbor.test/aihpc/argoproj/argocd:v2" in message
    )
    assert message.startswith("src/app/Dockerfile:2: ")


def test_desired_state_hub_and_quay_namesakes_coexist_externally():
    state = desired_state(_bases("quay.io/argoproj/argocd:v2", "argoproj/argocd:v2"), _network("external"))
    assert _aliases(state) == {
        "localhost/quay.io/argoproj/argocd:v2": "quay.io/argoproj/argocd:v2",
        "localhost/argoproj/argocd:v2": "argoproj/argocd:v2",
    }


def test_desired_state_registry_with_port():
    # A base image from a registry with a port cannot crash the run: it is
    # either planned (pulled, aliased or warned about) or a one-line InputError.
    ref = parse("registry.example:5000/team/tool:1")
    for mode in ("internal", "external"):
        try:
            state = desired_state([BaseImage(ref, ())], _network(mode))
        except InputError as exc:
            assert "registry.example:5000/team/tool:1" in str(exc)
        else:
            assert any(ref in p.serves for p in state.presence)


def test_desired_state_internal_registry_with_port():
    state = desired_state(_bases("redis:7"), _network("internal", registry="127.0.0.1:5552/aihpc"))
    assert _presence(state) == {"127.0.0.1:5552/aihpc/redis:7": ["redis:7"]}


def test_desired_state_empty():
    state = desired_state([], _network("internal"))
    assert (state.presence, state.aliases, state.warnings) == ([], [], [])


# --- base_images: the stack's inputs collected -------------------------------------


def _stack(root: Path, files: dict[str, str]):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return load(root / "stack.toml")


STACK = """
[stack]
name = "s"
tag = "v1"
image_prefix = "s-"
services = "src/*/Dockerfile"
compose = ["compose.yml"]
images = ["nvidia/cuda:12.4.1-base-ubuntu22.04", "docker.io/library/redis:7-alpine"]

[services.api]
build_args = { GO_VERSION = "1.25" }
"""


def test_base_images_collects_deduplicates_and_excludes_own_images(tmp_path, monkeypatch):
    monkeypatch.delenv("POSTGRES_VERSION", raising=False)
    stack = _stack(
        tmp_path,
        {
            "stack.toml": STACK,
            "src/base/Dockerfile": "FROM ubuntu:22.04\n",
            "src/api/Dockerfile": """
                ARG GO_VERSION=1.24
                FROM golang:${GO_VERSION}-alpine AS build
                FROM s-base:v1
                COPY --from=build /out /
                COPY --from=redis:7-alpine /usr/local/bin/redis-cli /bin/
            """,
            "src/worker/Dockerfile": "FROM docker.io/library/s-base:v1\nCOPY --from=index.docker.io/library/redis:7-alpine / /\n",
            "compose.yml": """
                services:
                  api:
                    build: ./src/api
                    image: s-api:v1
                  db:
                    image: postgres:${POSTGRES_VERSION:-16-alpine}
                  cache:
                    image: redis:7-alpine
            """,
        },
    )
    bases = base_images(stack)
    assert [b.ref.familiar for b in bases] == [
        "golang:1.25-alpine",
        "nvidia/cuda:12.4.1-base-ubuntu22.04",
        "postgres:16-alpine",
        "redis:7-alpine",
        "ubuntu:22.04",
    ]
    redis = next(b for b in bases if b.ref.familiar == "redis:7-alpine")
    assert [(stack.rel(u.file), u.line) for u in redis.used_by] == [
        ("compose.yml", 8),
        ("src/api/Dockerfile", 5),
        ("src/worker/Dockerfile", 2),
        ("stack.toml", 7),
    ]
    golang = next(b for b in bases if b.ref.familiar == "golang:1.25-alpine")
    assert [(stack.rel(u.file), u.line) for u in golang.used_by] == [("src/api/Dockerfile", 2)]


def test_base_images_service_image_override_is_excluded(tmp_path):
    stack = _stack(
        tmp_path,
        {
            "stack.toml": """
                [stack]
                name = "s"
                tag = "2"
                services = "src/*/Dockerfile"
                [services.base]
                image = "registry.test/team/base"
            """,
            "src/base/Dockerfile": "FROM alpine:3.20\n",
            "src/app/Dockerfile": "FROM registry.test/team/base:2\n",
        },
    )
    assert [b.ref.familiar for b in base_images(stack)] == ["alpine:3.20"]


def test_base_images_invalid_extra_image_is_input_error(tmp_path):
    stack = _stack(tmp_path, {"stack.toml": '[stack]\nname = "s"\n\nimages = ["Redis:7"]\n'})
    with pytest.raises(InputError) as info:
        base_images(stack)
    assert str(info.value).startswith("stack.toml:4: stack.images: ")
    assert "\n" not in str(info.value)


def test_base_images_dockerfile_error_is_shown_relative_to_the_stack(tmp_path):
    stack = _stack(
        tmp_path,
        {"stack.toml": '[stack]\nname = "s"\nservices = "src/*/Dockerfile"\n', "src/app/Dockerfile": "FROM $NOPE\n"},
    )
    with pytest.raises(InputError) as info:
        base_images(stack)
    assert str(info.value).startswith("src/app/Dockerfile:1: ")


def test_base_images_uses_service_target(tmp_path):
    stack = _stack(
        tmp_path,
        {
            "stack.toml": '[stack]\nname = "s"\nservices = "src/*/Dockerfile"\n[services.app]\ntarget = "runtime"\n',
            "src/app/Dockerfile": "FROM alpine:3.20 AS runtime\nFROM runtime AS test\nCOPY --from=busybox:1.36 / /\n",
        },
    )
    assert [b.ref.familiar for b in base_images(stack)] == ["alpine:3.20"]


# --- [network.harbor_paths]: an existing Harbor layout ---------------------------------

HARBOR_PATHS = {
    "quay.io/argoproj/argocd": "argocd",
    "docker.io/library/redis": "library/redis",
    "docker.io/bitnami/kubectl": "mirror/kubectl",
}


def test_harbor_paths_internal_pulls_the_mapped_path_and_aliases_the_names_used():
    bases = _bases("quay.io/argoproj/argocd:v2.12.3", "redis:7-alpine", "bitnami/kubectl:1.30", "osixia/openldap:1.5.0")
    state = desired_state(bases, _network("internal"), HARBOR_PATHS)
    assert _presence(state) == {
        "harbor.test/aihpc/argocd:v2.12.3": ["quay.io/argoproj/argocd:v2.12.3"],
        "harbor.test/aihpc/library/redis:7-alpine": ["redis:7-alpine"],
        "harbor.test/aihpc/mirror/kubectl:1.30": ["bitnami/kubectl:1.30"],
        "harbor.test/aihpc/osixia/openldap:1.5.0": ["osixia/openldap:1.5.0"],  # unmapped: the default path
    }
    assert _aliases(state) == {
        "quay.io/argoproj/argocd:v2.12.3": "harbor.test/aihpc/argocd:v2.12.3",
        "localhost/quay.io/argoproj/argocd:v2.12.3": "harbor.test/aihpc/argocd:v2.12.3",
        "redis:7-alpine": "harbor.test/aihpc/library/redis:7-alpine",
        "localhost/redis:7-alpine": "harbor.test/aihpc/library/redis:7-alpine",
        "bitnami/kubectl:1.30": "harbor.test/aihpc/mirror/kubectl:1.30",
        "localhost/bitnami/kubectl:1.30": "harbor.test/aihpc/mirror/kubectl:1.30",
        "osixia/openldap:1.5.0": "harbor.test/aihpc/osixia/openldap:1.5.0",
        "localhost/osixia/openldap:1.5.0": "harbor.test/aihpc/osixia/openldap:1.5.0",
    }
    assert state.warnings == []


def test_harbor_paths_are_ignored_externally():
    bases = _bases("quay.io/argoproj/argocd:v2.12.3", "redis:7-alpine")
    assert _presence(desired_state(bases, _network("external"), HARBOR_PATHS)) == _presence(
        desired_state(bases, _network("external"))
    )
    assert _aliases(desired_state(bases, _network("external"), HARBOR_PATHS)) == {
        "localhost/quay.io/argoproj/argocd:v2.12.3": "quay.io/argoproj/argocd:v2.12.3",
        "localhost/redis:7-alpine": "redis:7-alpine",
    }


@pytest.mark.parametrize("mode", ["internal", "external"])
def test_harbor_paths_leave_an_image_already_in_the_internal_registry_alone(mode):
    paths = {"harbor.test/aihpc/tools/kubectl": "mirror/kubectl"}
    state = desired_state(_bases("harbor.test/aihpc/tools/kubectl:1.30"), _network(mode), paths)
    assert _presence(state) == {"harbor.test/aihpc/tools/kubectl:1.30": ["harbor.test/aihpc/tools/kubectl:1.30"]}
    assert state.aliases == []


def test_harbor_paths_apply_to_a_dockerfile_using_the_alias():
    state = desired_state(_bases("localhost/quay.io/argoproj/argocd:v2"), _network("internal"), HARBOR_PATHS)
    assert _presence(state) == {"harbor.test/aihpc/argocd:v2": ["localhost/quay.io/argoproj/argocd:v2"]}
    assert _aliases(state) == {
        "quay.io/argoproj/argocd:v2": "harbor.test/aihpc/argocd:v2",
        "localhost/quay.io/argoproj/argocd:v2": "harbor.test/aihpc/argocd:v2",
    }


def test_harbor_paths_keep_the_digest_of_a_pinned_image():
    state = desired_state(_bases(f"quay.io/argoproj/argocd:v2@{DIGEST}"), _network("internal"), HARBOR_PATHS)
    assert _presence(state) == {f"harbor.test/aihpc/argocd:v2@{DIGEST}": [f"quay.io/argoproj/argocd:v2@{DIGEST}"]}
    assert state.aliases == []
    assert len(state.warnings) == 2
    assert all("pinned by digest" in w for w in state.warnings)


def test_harbor_paths_can_keep_the_registry_host_as_build_sh_named_it():
    paths = {"quay.io/argoproj/argocd": "quay.io/argoproj/argocd"}
    state = desired_state(_bases("quay.io/argoproj/argocd:v2"), _network("internal"), paths)
    assert _presence(state) == {"harbor.test/aihpc/quay.io/argoproj/argocd:v2": ["quay.io/argoproj/argocd:v2"]}


@pytest.mark.parametrize(
    ("bases", "paths", "clash"),
    [
        (
            ["quay.io/argoproj/argocd:v2", "argoproj/argocd:v2"],
            {"quay.io/argoproj/argocd": "argocd", "docker.io/argoproj/argocd": "argocd"},
            "quay.io/argoproj/argocd:v2 and argoproj/argocd:v2 both map to harbor.test/aihpc/argocd:v2",
        ),
        (
            ["bitnami/kubectl:1.30", "mirror/kubectl:1.30"],
            {"docker.io/bitnami/kubectl": "mirror/kubectl"},
            "bitnami/kubectl:1.30 and mirror/kubectl:1.30 both map to harbor.test/aihpc/mirror/kubectl:1.30",
        ),
    ],
    ids=["both-mapped", "mapped-onto-a-default-path"],
)
def test_harbor_paths_clash_in_internal_registry_is_input_error(bases, paths, clash):
    with pytest.raises(InputError) as info:
        desired_state(_bases(*bases), _network("internal"), paths)
    message = str(info.value)
    assert "\n" not in message
    assert clash in message
    assert message.startswith("src/app/Dockerfile:2: ")


def test_harbor_paths_resolve_a_default_clash():
    bases = _bases("quay.io/argoproj/argocd:v2", "argoproj/argocd:v2")
    state = desired_state(bases, _network("internal"), {"quay.io/argoproj/argocd": "quay/argocd"})
    assert _presence(state) == {
        "harbor.test/aihpc/quay/argocd:v2": ["quay.io/argoproj/argocd:v2"],
        "harbor.test/aihpc/argoproj/argocd:v2": ["argoproj/argocd:v2"],
    }


def test_harbor_paths_too_long_a_name_is_input_error():
    with pytest.raises(InputError) as info:
        desired_state(_bases("redis:7"), _network("internal"), {"docker.io/library/redis": "a/" * 130 + "redis"})
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "src/app/Dockerfile:1: redis:7 has no valid name in the internal registry harbor.test/aihpc"
    )


HARBOR_STACK = """
[stack]
name = "s"
images = ["redis:7-alpine", "docker.io/library/redis:7", "quay.io/argoproj/argocd:v2"]

[network.harbor_paths]
{key} = "library/redis"
"""


@pytest.mark.parametrize(
    "key", ["redis", '"library/redis"', '"docker.io/library/redis"', '"index.docker.io/library/redis"']
)
def test_harbor_paths_keys_are_normalized_when_loaded(tmp_path, key):
    stack = _stack(tmp_path, {"stack.toml": HARBOR_STACK.format(key=key)})
    paths = stack.config.network.harbor_paths
    assert paths == {"docker.io/library/redis": "library/redis"}
    state = desired_state(base_images(stack), _network("internal"), paths)
    assert _presence(state) == {
        "harbor.test/aihpc/library/redis:7": ["redis:7"],
        "harbor.test/aihpc/library/redis:7-alpine": ["redis:7-alpine"],
        "harbor.test/aihpc/argoproj/argocd:v2": ["quay.io/argoproj/argocd:v2"],
    }


def test_harbor_paths_default_to_empty(tmp_path):
    stack = _stack(tmp_path, {"stack.toml": '[stack]\nname = "s"\n'})
    assert stack.config.network.harbor_paths == {}


@pytest.mark.parametrize(
    ("entries", "line", "key", "reason"),
    [
        (
            '"quay.io/X" = "argocd"',
            8,
            '"quay.io/X"',
            "the key is not an image repository: invalid reference 'quay.io/X'",
        ),
        ('"" = "argocd"', 8, '""', "the key is not an image repository: empty image reference"),
        ('"redis:7" = "library/redis"', 8, '"redis:7"', "the key must be a repository without tag or digest"),
        (f'"redis@{DIGEST}" = "library/redis"', 8, f'"redis@{DIGEST}"', "without tag or digest"),
        (
            'redis = "library/redis"\n"docker.io/library/redis" = "redis"',
            9,
            '"docker.io/library/redis"',
            "the same repository as 'redis'",
        ),
        ('"quay.io/x" = "Argo CD"', 8, '"quay.io/x"', "'Argo CD' is not a repository path under the internal registry"),
        ('"quay.io/x" = "/argocd"', 8, '"quay.io/x"', "'/argocd' is not a repository path"),
        ('"quay.io/x" = "argocd:v2"', 8, '"quay.io/x"', "'argocd:v2' is not a repository path"),
        ('"quay.io/x" = ""', 8, '"quay.io/x"', "'' is not a repository path"),
        ("redis = 7", 8, "redis", "7 is not a repository path"),
    ],
    ids=[
        "capitals",
        "empty-key",
        "tag",
        "digest",
        "twice",
        "bad-path",
        "leading-slash",
        "path-tag",
        "empty-path",
        "number",
    ],
)
def test_harbor_paths_bad_entry_is_one_line_error_naming_the_key(tmp_path, entries, line, key, reason):
    text = f'[stack]\nname = "s"\n\n[network]\nmode = "internal"\n\n[network.harbor_paths]\n{entries}\n'
    (tmp_path / "stack.toml").write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        load(tmp_path / "stack.toml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / 'stack.toml'}:{line}: network.harbor_paths.{key}: ")
    assert reason in message


def test_harbor_paths_bad_entry_in_an_inline_table_names_the_key_and_its_line(tmp_path):
    text = '[stack]\nname = "s"\n\n[network]\nharbor_paths = { "quay.io/x" = "Argo" }\n'
    (tmp_path / "stack.toml").write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        load(tmp_path / "stack.toml")
    assert str(info.value).startswith(f"{tmp_path / 'stack.toml'}:5: network.harbor_paths.\"quay.io/x\": 'Argo' ")


def test_harbor_paths_must_be_a_table(tmp_path):
    text = '[stack]\nname = "s"\n\n[network]\nharbor_paths = ["argocd"]\n'
    (tmp_path / "stack.toml").write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        load(tmp_path / "stack.toml")
    assert str(info.value).startswith(f"{tmp_path / 'stack.toml'}:5: network.harbor_paths: ")
