"""Base images named by compose files' ``image:`` entries."""

import os
import textwrap
import time
from pathlib import Path

import pytest

from reconciler import compose
from reconciler.compose import ComposeBuild, compose_images, interpolation_env, read_compose, read_env_file
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


def test_a_lone_dollar_is_refused_naming_the_line_and_the_fix(tmp_path):
    path = _write(tmp_path / "compose.yml", "services:\n  s:\n    image: app\n    build:\n      args: [PW=pa$1]\n")
    with pytest.raises(InputError) as info:
        compose_images(path, {}, shown_as="compose.yml")
    message = str(info.value)
    assert message.startswith("compose.yml:5: ") and "a '$' that starts no variable" in message
    assert "write $$ for a literal $" in message


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


def test_compose_images_control_character_is_a_one_line_error(tmp_path):
    path = _write(tmp_path / "compose.yml", "services:\n  s:\n    image: \x07\n")
    with pytest.raises(InputError) as info:
        compose_images(path, {}, shown_as="compose.yml")
    assert str(info.value).startswith("compose.yml: not valid YAML: unacceptable character #x0007")
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


# -- read_compose: compose's own rules ------------------------------------


def _files(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        _write(path, text)


def _read(root, files, paths=("compose.yml",), env=None, **kwargs):
    _files(root, files)
    return read_compose([root / p for p in paths], env or {}, shown_as=lambda p: str(p.relative_to(root)), **kwargs)


def _error(root, files, paths=("compose.yml",), env=None, **kwargs):
    with pytest.raises(InputError) as info:
        _read(root, files, paths, env, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_read_compose_returns_image_build_and_profiles_with_lines(tmp_path):
    services = _read(
        tmp_path,
        {
            "compose.yml": """
            services:
              db:
                image: postgres:16
                profiles: [data]
              app:
                image: team/app:1
                build:
                  context: ./app
                  dockerfile: docker/Dockerfile
                  target: prod
                  args:
                    GO: "1.25"
            """
        },
    )
    assert list(services) == ["db", "app"]
    db, app = services["db"], services["app"]
    assert (db.image.ref.familiar, db.image.file, db.image.line) == ("postgres:16", tmp_path / "compose.yml", 3)
    assert db.build is None and db.profiles == ("data",)
    assert app.image.ref.familiar == "team/app:1"
    assert app.build == ComposeBuild(
        context=tmp_path / "app",
        dockerfile="docker/Dockerfile",
        target="prod",
        args={"GO": "1.25"},
        file=tmp_path / "compose.yml",
        line=7,
    )
    assert app.profiles == ()


def test_short_build_form_is_the_context(tmp_path):
    services = _read(tmp_path, {"compose.yml": "services:\n  app:\n    build: ./src/app\n"})
    assert services["app"].image is None
    assert services["app"].build == ComposeBuild(tmp_path / "src/app", None, None, {}, tmp_path / "compose.yml", 3)


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (None, "."),  # a build mapping without context: the project directory
        ("'.'", "."),
        ("../shared/app", "../shared/app"),
        ("./a/../b", "b"),
        ("${APP_DIR:-app}", "app"),
    ],
)
def test_build_context_resolves_against_the_project_directory(tmp_path, context, expected):
    build = "dockerfile: Dockerfile.dev" if context is None else f"context: {context}"
    services = _read(tmp_path / "proj", {"compose.yml": f"services:\n  app:\n    build:\n      {build}\n"})
    assert services["app"].build.context == Path(os.path.normpath(tmp_path / "proj" / expected))


def test_build_context_absolute_and_home(tmp_path):
    services = _read(
        tmp_path,
        {"compose.yml": f"services:\n  a:\n    build: {tmp_path}/abs\n  b:\n    build: ~/src\n"},
    )
    assert services["a"].build.context == tmp_path / "abs"
    assert services["b"].build.context == Path.home() / "src"


@pytest.mark.parametrize("context", ["https://github.com/docker/app.git", "git@github.com:docker/app.git"])
def test_remote_build_context_is_refused_where_the_build_is_used(tmp_path, context):
    services = _read(tmp_path, {"compose.yml": f"services:\n  app:\n    build:\n      context: {context}\n"})
    message = str(services["app"].build.refused["context"])
    assert message.startswith("compose.yml:4: services.app.build.context: remote build context")


def test_dockerfile_inline_is_refused_where_the_build_is_used(tmp_path):
    services = _read(
        tmp_path, {"compose.yml": "services:\n  app:\n    build:\n      dockerfile_inline: FROM scratch\n"}
    )
    message = str(services["app"].build.refused["dockerfile"])
    assert message.startswith("compose.yml:4: services.app.build: dockerfile_inline is not supported")


COMPOSE_WITH_UNBUILDABLE = """
services:
  app:
    image: app:1
    build:
      context: https://github.com/docker/app.git
  gen:
    build:
      context: ./gen
      dockerfile_inline: FROM scratch
  db:
    image: postgres:16
"""


def _stack(tmp_path, stack_extra=""):
    from reconciler import stack as stack_mod

    _files(tmp_path, {"compose.yml": COMPOSE_WITH_UNBUILDABLE, "app/Dockerfile": "FROM scratch\n"})
    (tmp_path / "gen").mkdir()
    (tmp_path / "gen" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "stack.toml").write_text(f'[stack]\nname = "s"\ncompose = ["compose.yml"]\n{stack_extra}')
    return stack_mod.load(tmp_path)


def test_unbuildable_compose_builds_do_not_stop_reading_base_images(tmp_path):
    """Without compose_builds the build sections are not used: a git context is no error."""
    from reconciler.desired import base_images

    assert [b.ref.familiar for b in base_images(_stack(tmp_path))] == ["postgres:16"]


def test_unbuildable_compose_build_is_an_error_when_the_stack_builds_it(tmp_path):
    with pytest.raises(InputError) as info:
        _stack(tmp_path, "compose_builds = true\n")
    assert str(info.value).startswith("compose.yml:5: services.app.build.context: remote build context")


def test_unbuildable_compose_build_replaced_by_the_stack_file_is_built(tmp_path):
    extra = 'compose_builds = true\n[services.app]\ncontext = "app"\n[services.gen]\ndockerfile = "Dockerfile"\n'
    services = {s.name: s for s in _stack(tmp_path, extra).services}
    assert services["app"].context == tmp_path / "app"
    assert services["gen"].dockerfile == tmp_path / "gen" / "Dockerfile"


def test_build_fields_are_interpolated(tmp_path):
    services = _read(
        tmp_path,
        {
            "compose.yml": """
            services:
              app:
                build:
                  context: ${CTX}
                  dockerfile: ${DF:-Dockerfile}.prod
                  target: $TARGET
                  args:
                    - VERSION=${VERSION}
                    - LITERAL=$${VERSION}
            """
        },
        env={"CTX": "src", "TARGET": "final", "VERSION": "2"},
    )
    build = services["app"].build
    assert (build.context, build.dockerfile, build.target) == (tmp_path / "src", "Dockerfile.prod", "final")
    assert build.args == {"VERSION": "2", "LITERAL": "${VERSION}"}


@pytest.mark.parametrize(
    "args",
    [
        "\n        - A=1\n        - EMPTY=\n        - FROM_ENV\n        - UNSET\n        - B=x=y",
        "\n        A: 1\n        EMPTY: ''\n        FROM_ENV:\n        UNSET: ~\n        B: x=y",
    ],
    ids=["list", "mapping"],
)
def test_build_args_list_and_mapping_forms(tmp_path, args):
    text = f"services:\n  app:\n    build:\n      context: .\n      args:{args}\n"
    services = _read(tmp_path, {"compose.yml": text}, env={"FROM_ENV": "env value"})
    # A bare name takes the environment's value; a bare name that is not set is left out.
    assert services["app"].build.args == {"A": "1", "EMPTY": "", "FROM_ENV": "env value", "B": "x=y"}


def test_build_arg_without_a_name_is_an_error(tmp_path):
    message = _error(tmp_path, {"compose.yml": "services:\n  app:\n    build:\n      args: ['=1']\n"})
    assert message.startswith("compose.yml:4: services.app.build.args: build arg '=1' has no name")


# Merging files like `docker compose -f compose.yml -f override.yml`


def test_later_files_override_image_and_merge_build_and_args(tmp_path):
    services = _read(
        tmp_path,
        {
            "compose.yml": """
            services:
              app:
                image: app:1
                build:
                  context: ./app
                  dockerfile: Dockerfile.prod
                  args:
                    A: "1"
                    B: "1"
              db:
                image: postgres:15
              web:
                build:
                  context: ./web
                  target: prod
            """,
            "override/dev.yml": """
            services:
              app:
                image: app:dev
                build:
                  target: dev
                  args: [B=2, C=3]
              web:
                build: ./web-dev
              extra:
                image: busybox
            """,
        },
        paths=("compose.yml", "override/dev.yml"),
    )
    assert list(services) == ["app", "db", "web", "extra"]
    app = services["app"]
    assert app.image.ref.familiar == "app:dev"
    assert app.image.file == tmp_path / "override/dev.yml"
    assert app.build == ComposeBuild(
        context=tmp_path / "app",
        dockerfile="Dockerfile.prod",
        target="dev",
        args={"A": "1", "B": "2", "C": "3"},
        file=tmp_path / "override/dev.yml",
        line=4,
    )
    assert services["db"].image.ref.familiar == "postgres:15"
    # Short form in the override: only the context changes; relative to the first file's folder.
    assert services["web"].build.context == tmp_path / "web-dev"
    assert services["web"].build.target == "prod"


def test_later_file_adds_build_to_an_image_service(tmp_path):
    files = {
        "compose.yml": "services:\n  app:\n    image: app:1\n",
        "build.yml": "services:\n  app:\n    build: .\n",
    }
    _files(tmp_path, files)
    only = compose_images(tmp_path / "compose.yml", {})
    both = compose_images([tmp_path / "compose.yml", tmp_path / "build.yml"], {})
    assert [u.ref.familiar for u in only] == ["app:1"]
    assert both == []


def test_profiles_of_later_files_are_appended_without_duplicates(tmp_path):
    services = _read(
        tmp_path,
        {
            "compose.yml": "services:\n  s:\n    image: a\n    profiles: [one, two]\n",
            "b.yml": "services:\n  s:\n    profiles: [two, three]\n",
        },
        paths=("compose.yml", "b.yml"),
    )
    assert services["s"].profiles == ("one", "two", "three")


def test_null_in_a_later_file_overrides_nothing(tmp_path):
    services = _read(
        tmp_path,
        {"compose.yml": "services:\n  s:\n    image: a:1\n", "b.yml": "services:\n  s:\n    image:\n"},
        paths=("compose.yml", "b.yml"),
    )
    assert services["s"].image.ref.familiar == "a:1"


def test_reset_and_override_tags(tmp_path):
    services = _read(
        tmp_path,
        {
            "compose.yml": """
            services:
              s:
                image: a:1
                profiles: [x]
                build:
                  context: ./s
                  target: prod
                  args: {A: "1", B: "1"}
            """,
            "b.yml": """
            services:
              s:
                image: !reset null
                profiles: !override [y]
                build:
                  target: !reset
                  args: !override {C: "3"}
            """,
        },
        paths=("compose.yml", "b.yml"),
    )
    s = services["s"]
    assert s.image is None
    assert s.profiles == ("y",)
    assert (s.build.context, s.build.target, s.build.args) == (tmp_path / "s", None, {"C": "3"})


def test_reset_removes_a_whole_service(tmp_path):
    services = _read(
        tmp_path,
        {"compose.yml": "services:\n  a:\n    image: a\n  b:\n    image: b\n", "b.yml": "services:\n  a: !reset\n"},
        paths=("compose.yml", "b.yml"),
    )
    assert list(services) == ["b"]


def test_override_on_a_service_replaces_the_whole_service(tmp_path):
    """compose-go applies `!override` at any path: the earlier files' build is gone, so the image is a base image."""
    services = _read(
        tmp_path,
        {
            "compose.yml": "services:\n  s:\n    image: app:1\n    build: ./s\n    profiles: [x]\n",
            "b.yml": "services:\n  s: !override\n    image: redis:7\n",
        },
        paths=("compose.yml", "b.yml"),
    )
    s = services["s"]
    assert (s.image.ref.familiar, s.build, s.profiles) == ("redis:7", None, ())


def test_build_override_replaces_the_whole_build(tmp_path):
    services = _read(
        tmp_path,
        {
            "compose.yml": "services:\n  s:\n    build:\n      context: ./s\n      target: prod\n",
            "b.yml": "services:\n  s:\n    build: !override\n      dockerfile: Other\n",
        },
        paths=("compose.yml", "b.yml"),
    )
    assert (services["s"].build.context, services["s"].build.target) == (tmp_path, None)
    assert services["s"].build.dockerfile == "Other"


def test_documents_of_one_file_merge_in_order(tmp_path):
    services = _read(
        tmp_path, {"compose.yml": "services:\n  s:\n    image: a:1\n---\nservices:\n  s:\n    image: a:2\n"}
    )
    assert (services["s"].image.ref.familiar, services["s"].image.line) == ("a:2", 7)


# YAML merge keys


def test_merge_keys_single_and_list(tmp_path):
    services = _read(
        tmp_path,
        {
            "compose.yml": """
            x-base: &base
              image: base:1
              profiles: [tools]
            x-build: &build
              build:
                context: ./b
            x-other: &other
              image: other:1
              build: ./other
            services:
              one:
                <<: *base
              two:
                <<: [*build, *other]
                image: own:1
              three:
                image: own:1
                <<: [*other, *base]
            """
        },
    )
    assert (services["one"].image.ref.familiar, services["one"].image.line) == ("base:1", 2)
    assert services["one"].profiles == ("tools",)
    # Own keys win wherever they stand; among merged mappings the first listed wins.
    assert services["two"].image.ref.familiar == "own:1"
    assert services["two"].build.context == tmp_path / "b"
    assert services["two"].build.line == 5
    assert services["three"].image.ref.familiar == "own:1"
    assert services["three"].build.context == tmp_path / "other"
    assert services["three"].profiles == ("tools",)


def test_merge_keys_nest(tmp_path):
    services = _read(
        tmp_path,
        {
            "compose.yml": """
            x-a: &a {image: a:1, profiles: [p]}
            x-b: &b {<<: *a, image: b:1}
            services:
              s: {<<: *b}
            """
        },
    )
    assert (services["s"].image.ref.familiar, services["s"].profiles) == ("b:1", ("p",))


def test_an_anchor_defined_again_takes_over(tmp_path):
    text = "x-a: &img {image: a:1}\nx-b: &img {image: b:1}\nservices:\n  s:\n    <<: *img\n"
    assert _read(tmp_path, {"compose.yml": text})["s"].image.ref.familiar == "b:1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "services:\n  s:\n    image: a\n    image: b\n",
            "compose.yml:4: mapping key 'image' already defined at line 3",
        ),
        (
            "x: &x {image: a}\nservices:\n  s:\n    <<: *x\n    <<: *x\n",
            'compose.yml:5: mapping key "<<" already defined at line 4',
        ),
        ("services:\n  s:\n    <<: [a]\n", "compose.yml:3: a merge key (<<) takes a mapping or a list of mappings"),
        ("services:\n  s: &s\n    <<: *s\n", "compose.yml:2: a merge key (<<) includes its own mapping"),
    ],
    ids=["duplicate key", "duplicate merge key", "merge of a list of scalars", "merge of itself"],
)
def test_mapping_errors(tmp_path, text, expected):
    (tmp_path / "compose.yml").write_text(text)
    with pytest.raises(InputError) as info:
        read_compose([tmp_path / "compose.yml"], {}, shown_as=lambda p: p.name)
    assert str(info.value).startswith(expected)


# extends


def test_extends_a_service_of_the_same_file(tmp_path):
    services = _read(
        tmp_path,
        {
            "compose.yml": """
            services:
              base:
                image: base:1
                profiles: [tools]
                build:
                  context: ./base
                  args: {A: "1", B: "1"}
              middle:
                extends: base
                build:
                  args: {B: "2"}
              leaf:
                extends:
                  service: middle
                image: leaf:1
            """
        },
    )
    leaf = services["leaf"]
    assert leaf.image.ref.familiar == "leaf:1"
    assert leaf.profiles == ("tools",)
    assert leaf.build.context == tmp_path / "base"
    assert leaf.build.args == {"A": "1", "B": "2"}
    assert (leaf.build.file, leaf.build.line) == (tmp_path / "compose.yml", 10)
    assert services["base"].build.args == {"A": "1", "B": "1"}


def test_extends_a_service_of_another_file_resolves_its_paths_there(tmp_path):
    services = _read(
        tmp_path,
        {
            "compose.yml": """
            services:
              app:
                extends:
                  file: common/services.yml
                  service: web
                build:
                  target: dev
            """,
            "common/services.yml": """
            services:
              web:
                extends: {file: base.yml, service: root}
                build:
                  context: ./web
                  args: [FROM_COMMON=1]
            """,
            "common/base.yml": "services:\n  root:\n    image: root:1\n",
        },
    )
    app = services["app"]
    assert app.image.ref.familiar == "root:1"
    assert app.image.file == tmp_path / "common/base.yml"
    assert app.build.context == tmp_path / "common/web"
    assert (app.build.target, app.build.args) == ("dev", {"FROM_COMMON": "1"})
    assert (app.build.file, app.build.line) == (tmp_path / "compose.yml", 6)
    # Only the services of the files given are services of the project.
    assert list(services) == ["app"]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"compose.yml": "services:\n  a:\n    extends: b\n  b:\n    extends: a\n"},
            "compose.yml:2: extends: services.a extends itself through a cycle",
        ),
        (
            {"compose.yml": "services:\n  a:\n    extends: a\n"},
            "compose.yml:2: extends: services.a extends itself through a cycle",
        ),
        (
            {
                "compose.yml": "services:\n  a:\n    extends: {service: b, file: other.yml}\n",
                "other.yml": "services:\n  b:\n    extends: {service: a, file: compose.yml}\n",
            },
            "compose.yml:2: extends: services.a extends itself through a cycle",
        ),
        (
            {"compose.yml": "services:\n  a:\n    extends: nope\n"},
            "compose.yml:3: services.a.extends: service 'nope' to extend is not defined",
        ),
        (
            {"compose.yml": "services:\n  a:\n    extends: {service: b, file: other.yml}\n", "other.yml": "{}\n"},
            "compose.yml:3: services.a.extends: service 'b' to extend is not defined in other.yml",
        ),
        (
            {"compose.yml": "services:\n  a:\n    extends: {service: b, file: missing.yml}\n"},
            "compose.yml:3: services.a.extends: cannot read missing.yml: No such file or directory",
        ),
    ],
    ids=["cycle", "itself", "cycle across files", "missing service", "missing in file", "missing file"],
)
def test_extends_errors(tmp_path, files, expected):
    assert _error(tmp_path, files).startswith(expected)


# include


def test_include_joins_the_services_of_included_projects(tmp_path):
    services = _read(
        tmp_path,
        {
            "compose.yml": """
            include:
              - ${DB_DIR:-db}/compose.yml
              - path: [tools/compose.yml, tools/override.yml]
              - path: lib.yml
                project_directory: lib
            services:
              app:
                build: .
            """,
            "db/compose.yml": "services:\n  db:\n    image: postgres:16\n",
            "tools/compose.yml": "services:\n  tool:\n    build: ./src\n",
            "tools/override.yml": "services:\n  tool:\n    build:\n      target: dev\n",
            "lib.yml": "services:\n  lib:\n    build: .\n",
        },
    )
    assert list(services) == ["app", "db", "tool", "lib"]
    assert services["db"].image.file == tmp_path / "db/compose.yml"
    assert services["app"].build.context == tmp_path
    # An included project's paths resolve against its own directory.
    assert (services["tool"].build.context, services["tool"].build.target) == (tmp_path / "tools/src", "dev")
    assert services["lib"].build.context == tmp_path / "lib"


def test_include_of_the_same_project_twice_is_not_a_conflict(tmp_path):
    services = _read(
        tmp_path,
        {
            "compose.yml": "include: [a.yml, b.yml]\n",
            "a.yml": "include: [shared.yml]\nservices:\n  a:\n    image: a\n",
            "b.yml": "include: [shared.yml]\nservices:\n  b:\n    image: b\n",
            "shared.yml": "services:\n  shared:\n    image: shared\n",
        },
    )
    assert sorted(services) == ["a", "b", "shared"]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {
                "compose.yml": "include: [db.yml]\nservices:\n  db:\n    image: mysql\n",
                "db.yml": "services:\n  db:\n    image: postgres\n",
            },
            "compose.yml:1: include: services.db conflicts with imported resource (also defined in db.yml)",
        ),
        (
            {"compose.yml": "include: [a.yml]\n", "a.yml": "include: [compose.yml]\n"},
            "a.yml:1: include: include cycle: compose.yml -> a.yml -> compose.yml",
        ),
        (
            {"compose.yml": "include: [compose.yml]\n"},
            "compose.yml:1: include: include cycle: compose.yml -> compose.yml",
        ),
        (
            {"compose.yml": "include:\n  - missing.yml\n"},
            "compose.yml:2: include: cannot read missing.yml: No such file or directory",
        ),
        ({"compose.yml": "include: db.yml\n"}, "compose.yml:1: include: `include` must be a list"),
    ],
    ids=["conflict", "cycle", "itself", "missing", "not a list"],
)
def test_include_errors(tmp_path, files, expected):
    assert _error(tmp_path, files).startswith(expected)


# profiles


PROFILES = """
services:
  always:
    image: always
  debug:
    image: debug
    profiles: [debug]
  tools:
    image: tools
    profiles: [tools, debug]
"""


@pytest.mark.parametrize(
    ("profiles", "expected"),
    [
        (None, ["always", "debug", "tools"]),
        ([], ["always"]),
        (["tools"], ["always", "tools"]),
        (["debug"], ["always", "debug", "tools"]),
        (["*"], ["always", "debug", "tools"]),
    ],
)
def test_profiles_select_services(tmp_path, profiles, expected):
    assert list(_read(tmp_path, {"compose.yml": PROFILES}, profiles=profiles)) == expected


def test_compose_images_filters_by_profile_and_skips_builds(tmp_path):
    _files(tmp_path, {"compose.yml": PROFILES + "  built:\n    image: built\n    build: .\n"})
    images = compose_images(tmp_path / "compose.yml", {}, profiles=["tools"])
    assert [str(u.ref) for u in images] == ["always:latest", "tools:latest"]


def test_compose_images_shows_other_files_beside_the_first(tmp_path):
    _files(
        tmp_path,
        {"stack/compose.yml": "include: [sub/db.yml]\n", "stack/sub/db.yml": "services:\n  db:\n    image: A\n"},
    )
    with pytest.raises(InputError) as info:
        compose_images(tmp_path / "stack/compose.yml", {}, shown_as="stack/compose.yml")
    assert str(info.value).startswith("stack/sub/db.yml:3: services.db.image: ")


# read_text


def test_read_text_serves_files_not_on_disk(tmp_path):
    rendered = {
        tmp_path / "compose.yml": "include: [rendered/more.yml]\nservices:\n  app:\n    image: app:1\n",
        tmp_path / "rendered/more.yml": "services:\n  more:\n    extends: {file: base.yml, service: b}\n",
        tmp_path / "rendered/base.yml": "services:\n  b:\n    build: ./ctx\n",
    }
    calls = []

    def read_text(path):
        calls.append(path)
        return rendered[path]

    services = read_compose([tmp_path / "compose.yml"], {}, read_text=read_text)
    assert services["app"].image.ref.familiar == "app:1"
    assert services["more"].build.context == tmp_path / "rendered/ctx"
    assert sorted(calls) == sorted(rendered)  # each read once, none from disk
    assert list(tmp_path.iterdir()) == []


def test_read_text_errors_name_the_file(tmp_path):
    def read_text(path):
        raise FileNotFoundError(2, "No such file or directory", str(path))

    with pytest.raises(InputError) as info:
        read_compose([tmp_path / "compose.yml"], {}, read_text=read_text, shown_as=lambda p: p.name)
    assert str(info.value) == "compose.yml: cannot read compose file: No such file or directory; fix stack.compose"


# Hostile input: bounded depth and work, one-line errors


@pytest.mark.parametrize(
    "text",
    [
        "services:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(1000)) + "  " * 1001 + "x: 1\n",
        "services: " + "[" * 1000 + "]" * 1000 + "\n",
        "services: " + "{a: " * 1000 + "1" + "}" * 1000 + "\n",
    ],
    ids=["block", "flow sequence", "flow mapping"],
)
def test_a_file_nested_1000_deep_is_a_one_line_error(tmp_path, text):
    started = time.monotonic()
    message = _error(tmp_path, {"compose.yml": text})
    assert time.monotonic() - started < 5
    assert "YAML nested more than 100 levels deep" in message
    assert message.startswith("compose.yml:")


def _bomb(levels=12, width=10):
    lines = ['x-l0: &l0 ["lol"]']
    for i in range(1, levels):
        lines.append(f"x-l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n", f"*l{levels - 1}"


def test_an_alias_bomb_where_we_do_not_look_costs_its_text(tmp_path):
    bomb, top = _bomb()  # 10**11 strings if expanded
    started = time.monotonic()
    services = _read(tmp_path, {"compose.yml": bomb + f"services:\n  s:\n    image: a\n    command: {top}\n"})
    assert time.monotonic() - started < 5
    assert services["s"].image.line == 15


@pytest.mark.parametrize("where", ["profiles", "build:\n      args", "image"])
def test_an_alias_bomb_where_we_look_is_a_one_line_error(tmp_path, where):
    bomb, top = _bomb()
    started = time.monotonic()
    message = _error(tmp_path, {"compose.yml": bomb + f"services:\n  s:\n    {where}: {top}\n"})
    assert time.monotonic() - started < 5
    assert "must be" in message


def test_a_merge_key_bomb_is_resolved_once_per_mapping(tmp_path):
    lines = ["x-m0: &m0 {image: a:1}"]
    for i in range(1, 40):
        lines.append(f"x-m{i}: &m{i} {{<<: [" + ", ".join([f"*m{i - 1}"] * 10) + f"], k{i}: v}}")
    text = "\n".join(lines) + "\nservices:\n  s:\n    <<: *m39\n"
    started = time.monotonic()
    services = _read(tmp_path, {"compose.yml": text})
    assert time.monotonic() - started < 5
    assert services["s"].image.ref.familiar == "a:1"


def test_more_nodes_than_the_limit_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(compose, "MAX_NODES", 1_000)
    text = "services:\n" + "".join(f"  s{i}:\n    image: a\n" for i in range(400))
    message = _error(tmp_path, {"compose.yml": text})
    assert "more than 1,000 YAML nodes to read" in message
    assert message.startswith("compose.yml:")


def test_an_extends_chain_deeper_than_the_limit_is_a_one_line_error(tmp_path):
    # Each service extends the next one, so resolving the first follows the whole chain.
    text = "services:\n" + "".join(f"  s{i}:\n    extends: s{i + 1}\n" for i in range(150)) + "  s150:\n    image: a\n"
    message = _error(tmp_path, {"compose.yml": text})
    assert "extends nested more than 100 levels deep" in message


def test_an_include_chain_deeper_than_the_limit_is_a_one_line_error(tmp_path):
    files = {f"f{i}.yml": f"include: [f{i + 1}.yml]\n" for i in range(150)}
    files["f150.yml"] = "services:\n  s:\n    image: a\n"
    files["compose.yml"] = "include: [f0.yml]\n"
    message = _error(tmp_path, files)
    assert "include nested more than 100 levels deep" in message
