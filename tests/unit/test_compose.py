"""Base images named by compose files' ``image:`` entries."""

import textwrap

import pytest

from reconciler.compose import compose_images, interpolation_env, read_env_file
from reconciler.errors import InputError


def _write(path, text):
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def _images(path, env=None):
    return [(u.ref.familiar, u.line) for u in compose_images(path, env or {}, shown_as="compose.yml")]


def test_compose_images_reads_image_entries_with_lines(tmp_path):
    path = _write(
        tmp_path / "compose.yml",
        """
        services:
          redis:
            image: redis:7-alpine
          ldap:
            environment:
              A: b
            image: "docker.io/osixia/openldap:1.5.0"
        """,
    )
    assert _images(path) == [("redis:7-alpine", 3), ("osixia/openldap:1.5.0", 7)]
    assert all(u.file == path for u in compose_images(path, {}, shown_as="compose.yml"))


def test_compose_images_ignores_services_with_build(tmp_path):
    path = _write(
        tmp_path / "compose.yml",
        """
        services:
          app:
            build: ./app
            image: ai-infra-app:${TAG:-v1}
          web:
            build:
              context: ./web
          db:
            image: postgres:16-alpine
        """,
    )
    assert _images(path) == [("postgres:16-alpine", 9)]


def test_compose_images_skips_services_without_image(tmp_path):
    path = _write(tmp_path / "compose.yml", "services:\n  sidecar:\n    command: [sleep, '1']\n")
    assert _images(path) == []


@pytest.mark.parametrize(
    ("image", "env", "expected"),
    [
        ("postgres:${POSTGRES_VERSION:-16-alpine}", {}, "postgres:16-alpine"),
        ("postgres:${POSTGRES_VERSION:-16-alpine}", {"POSTGRES_VERSION": ""}, "postgres:16-alpine"),
        ("postgres:${POSTGRES_VERSION:-16-alpine}", {"POSTGRES_VERSION": "15-alpine"}, "postgres:15-alpine"),
        ("${REDIS_IMAGE:-redis:7-alpine}", {}, "redis:7-alpine"),
        ("${REGISTRY}/team/app:$TAG", {"REGISTRY": "harbor.test", "TAG": "1"}, "harbor.test/team/app:1"),
        ("busybox:${TAG-1.36}", {}, "busybox:1.36"),
    ],
)
def test_compose_images_interpolates_variables(tmp_path, image, env, expected):
    path = _write(tmp_path / "compose.yml", f'services:\n  s:\n    image: "{image}"\n')
    assert _images(path, env) == [(expected, 3)]


def test_compose_images_double_dollar_is_a_literal_dollar(tmp_path):
    path = _write(tmp_path / "compose.yml", 'services:\n  s:\n    image: "redis:$${TAG}"\n')
    with pytest.raises(InputError) as info:
        compose_images(path, {"TAG": "7"}, shown_as="compose.yml")
    # Not expanded: the reference keeps the literal ${TAG}.
    assert "${TAG}" in str(info.value)
    assert "compose.yml:3: services.s.image" in str(info.value)


def test_compose_images_unset_variable_hint_names_it(tmp_path):
    path = _write(tmp_path / "compose.yml", 'services:\n  s:\n    image: "${REDIS_IMAGE}"\n')
    with pytest.raises(InputError) as info:
        compose_images(path, {}, shown_as="compose.yml")
    message = str(info.value)
    assert message.startswith("compose.yml:3: services.s.image: ")
    assert "REDIS_IMAGE is not set" in message
    assert "\n" not in message


def test_compose_images_required_variable_error(tmp_path):
    path = _write(tmp_path / "compose.yml", 'services:\n  s:\n    image: "app:${TAG:?TAG must be set}"\n')
    with pytest.raises(InputError) as info:
        compose_images(path, {}, shown_as="compose.yml")
    assert "TAG: TAG must be set" in str(info.value)
    assert str(info.value).startswith("compose.yml:3: services.s.image")


def test_compose_images_malformed_substitution_error(tmp_path):
    path = _write(tmp_path / "compose.yml", 'services:\n  s:\n    image: "app:${TAG"\n')
    with pytest.raises(InputError, match="bad substitution") as info:
        compose_images(path, {}, shown_as="compose.yml")
    assert "compose.yml:3" in str(info.value)


def test_compose_images_invalid_reference_error_has_line(tmp_path):
    path = _write(tmp_path / "compose.yml", "services:\n  a:\n    image: redis:7\n  b:\n    image: Redis:7\n")
    with pytest.raises(InputError, match="must be lowercase") as info:
        compose_images(path, {}, shown_as="compose.yml")
    assert str(info.value).startswith("compose.yml:5: services.b.image: ")


def test_compose_images_bad_yaml_error_has_line(tmp_path):
    path = _write(
        tmp_path / "compose.yml",
        """
        services:
          redis:
            image: [redis
          other: 1
        """,
    )
    with pytest.raises(InputError, match="not valid YAML") as info:
        compose_images(path, {}, shown_as="compose.yml")
    assert str(info.value).startswith("compose.yml:4: ")
    assert "\n" not in str(info.value)


def test_compose_images_image_must_be_a_string(tmp_path):
    path = _write(tmp_path / "compose.yml", "services:\n  s:\n    image:\n      - redis\n")
    with pytest.raises(InputError, match=r"services\.s\.image must be a string") as info:
        compose_images(path, {}, shown_as="compose.yml")
    assert "compose.yml:4" in str(info.value)


def test_compose_images_services_must_be_a_mapping(tmp_path):
    path = _write(tmp_path / "compose.yml", "name: x\nservices:\n  - redis\n")
    with pytest.raises(InputError, match="`services` must be a mapping") as info:
        compose_images(path, {}, shown_as="compose.yml")
    assert "compose.yml:3" in str(info.value)


@pytest.mark.parametrize("text", ["", "name: x\n", "volumes:\n  data:\n"])
def test_compose_images_without_services_is_empty(tmp_path, text):
    path = _write(tmp_path / "compose.yml", text)
    assert _images(path) == []


def test_compose_images_missing_file_is_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot read compose file") as info:
        compose_images(tmp_path / "nope.yml", {}, shown_as="nope.yml")
    assert str(info.value).startswith("nope.yml: ")


def test_interpolation_env_process_environment_wins_over_env_file(tmp_path, monkeypatch):
    env_file = _write(tmp_path / ".env", "POSTGRES_VERSION=15-alpine\nREDIS_IMAGE=redis:6\n")
    monkeypatch.setenv("POSTGRES_VERSION", "14-alpine")
    monkeypatch.delenv("REDIS_IMAGE", raising=False)
    env = interpolation_env(env_file, ".env")
    assert env["POSTGRES_VERSION"] == "14-alpine"
    assert env["REDIS_IMAGE"] == "redis:6"


def test_interpolation_env_feeds_compose_images(tmp_path, monkeypatch):
    env_file = _write(tmp_path / ".env", "POSTGRES_VERSION=15-alpine\n")
    compose = _write(
        tmp_path / "compose.yml",
        """
        services:
          db:
            image: postgres:${POSTGRES_VERSION:-16-alpine}
          cache:
            image: ${REDIS_IMAGE:-redis:7-alpine}
        """,
    )
    monkeypatch.delenv("POSTGRES_VERSION", raising=False)
    monkeypatch.delenv("REDIS_IMAGE", raising=False)
    assert _images(compose, interpolation_env(env_file, ".env")) == [("postgres:15-alpine", 3), ("redis:7-alpine", 5)]
    monkeypatch.setenv("REDIS_IMAGE", "redis:7.2")
    monkeypatch.setenv("POSTGRES_VERSION", "13")
    assert _images(compose, interpolation_env(env_file, ".env")) == [("postgres:13", 3), ("redis:7.2", 5)]


def test_interpolation_env_without_env_file_is_the_environment(monkeypatch):
    monkeypatch.setenv("RECONCILE_TEST_ONLY", "1")
    assert interpolation_env(None, None)["RECONCILE_TEST_ONLY"] == "1"


def test_read_env_file_parses_dotenv_syntax(tmp_path):
    path = _write(
        tmp_path / ".env",
        """
        # comment
        A=1
        export B="two words"
        C='single'
        EMPTY=
        NOVALUE
        """,
    )
    assert read_env_file(path, ".env") == {"A": "1", "B": "two words", "C": "single", "EMPTY": ""}


def test_read_env_file_missing_is_input_error(tmp_path):
    with pytest.raises(InputError, match=r"env file .* not found") as info:
        read_env_file(tmp_path / ".env", "stack.toml")
    assert str(info.value).startswith("stack.toml: ")
