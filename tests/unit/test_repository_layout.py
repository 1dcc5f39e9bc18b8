"""Taking a repository as it is: templates rendered before the stack is read, template
globs, top-level template names, stack-wide build defaults, exclude, env_file lists.

Everything here is pure (no daemon): ``pipeline.discover`` renders in memory and reads
the stack folder as apply will leave it, and must write nothing.
"""

import textwrap
from pathlib import Path

import pytest

from reconciler import pipeline
from reconciler.errors import InputError
from reconciler.stack import load
from reconciler.tree import StackTree

HEAD = '[stack]\nname = "m"\ntag = "v1"\nimage_prefix = "x-"\nservices = "src/*/Dockerfile"\n'


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _discover(root: Path):
    return pipeline.discover(str(root), network="external")


def _error(root: Path) -> str:
    before = _snapshot(root)
    with pytest.raises(InputError) as info:
        _discover(root)
    assert _snapshot(root) == before, "a failed plan wrote something"
    message = str(info.value)
    assert "\n" not in message
    return message


TEMPLATED = {
    "stack.toml": HEAD
    + """
context = "."
env_file = [".env", ".env.example"]
env_build_args = true

[[templates]]
src = "src/*/Dockerfile.tpl"
dest = "{dir}/{name}"
""",
    ".env.example": "GITEA_VERSION=1.22.3\nUNRELATED=1\n",
    "src/gitea/Dockerfile.tpl": """
        ARG GITEA_VERSION={{GITEA_VERSION}}
        FROM gitea/gitea:${GITEA_VERSION}
        COPY src/gitea/entry.sh /entry.sh
    """,
    "src/gitea/entry.sh": "#!/bin/sh\n",
    "src/plain/Dockerfile": "FROM redis:7-alpine\n",
}


def test_a_templated_dockerfile_is_a_service_before_it_exists_and_nothing_is_written(tmp_path):
    root = _write(tmp_path, TEMPLATED)
    before = _snapshot(root)
    found = _discover(root)
    assert _snapshot(root) == before  # plan renders in memory only
    assert [s.name for s in found.stack.services] == ["gitea", "plain"]
    assert [b.ref.familiar for b in found.bases] == ["gitea/gitea:1.22.3", "redis:7-alpine"]
    (spec,) = found.files
    assert spec.rel == "src/gitea/Dockerfile"
    assert spec.content.startswith(b"ARG GITEA_VERSION=1.22.3\n")


def test_root_context_takes_the_dockerfile_path_relative_to_it(tmp_path):
    root = _write(tmp_path, TEMPLATED)
    gitea = next(s for s in _discover(root).stack.services if s.name == "gitea")
    assert gitea.context == root.resolve()
    assert gitea.dockerfile == root.resolve() / "src/gitea/Dockerfile"


def test_env_file_keys_are_build_args_but_only_declared_ones_are_used(tmp_path):
    root = _write(tmp_path, TEMPLATED)
    found = _discover(root)
    gitea = next(s for s in found.stack.services if s.name == "gitea")
    assert gitea.build_args["UNRELATED"] == "1"  # passed by the stack ...
    specs = {b.service: b for b in pipeline.prepare(str(root), network="external").desired.builds}
    assert specs["gitea"].build_args == {"GITEA_VERSION": "1.22.3"}  # ... but only declared ARGs count
    assert specs["plain"].build_args == {}


def test_the_first_existing_env_file_is_read(tmp_path):
    root = _write(tmp_path, {**TEMPLATED, ".env": "GITEA_VERSION=1.23.0\n"})
    assert _discover(root).bases[0].ref.familiar == "gitea/gitea:1.23.0"


def test_no_env_file_of_the_list_is_an_error_naming_them_all(tmp_path):
    files = {k: v for k, v in TEMPLATED.items() if k != ".env.example"}
    message = _error(_write(tmp_path, files))
    assert "none of the env files '.env', '.env.example' exists" in message
    assert "stack.toml:8: stack.env_file" in message


def test_env_file_naming_a_folder_says_so(tmp_path):
    root = _write(tmp_path, {"stack.toml": HEAD + 'env_file = "conf"\n', "src/a/Dockerfile": "FROM redis:7\n"})
    (root / "conf").mkdir()
    assert "env file 'conf' is a folder" in _error(root)


def test_top_level_template_names_come_from_vars_over_the_env_file(tmp_path):
    root = _write(
        tmp_path,
        {
            "stack.toml": HEAD
            + 'env_file = ".env"\n\n[[templates]]\nsrc = "t.j2"\ndest = "out.txt"\nvars = { B = "from-vars" }\n',
            ".env": "A=from-env\nB=from-env\n",
            "t.j2": "{{A}} {{ B }} {{ vars.B }}\n",
            "src/a/Dockerfile": "FROM redis:7\n",
        },
    )
    (spec,) = _discover(root).files
    assert spec.content == b"from-env from-vars from-vars\n"


def test_an_unknown_top_level_name_names_the_template_line(tmp_path):
    root = _write(
        tmp_path,
        {
            "stack.toml": HEAD + '\n[[templates]]\nsrc = "src/*/Dockerfile.tpl"\ndest = "{dir}/{name}"\n',
            "src/a/Dockerfile.tpl": "FROM redis:7\nARG V={{ MISSING_VERSION }}\n",
        },
    )
    message = _error(root)
    assert "src/a/Dockerfile.tpl:2" in message and "MISSING_VERSION" in message


def test_a_template_glob_matching_nothing_is_an_error(tmp_path):
    root = _write(
        tmp_path,
        {
            "stack.toml": HEAD + '\n[[templates]]\nsrc = "src/*/Dockerfile.tpl"\ndest = "{dir}/{name}"\n',
            "src/a/Dockerfile": "FROM redis:7\n",
        },
    )
    message = _error(root)
    assert "'src/*/Dockerfile.tpl' matches no file" in message and "templates[0].src" in message


@pytest.mark.parametrize("dest", ["stack.toml", ".env"])
def test_a_template_may_not_overwrite_the_stack_file_or_the_env_file(tmp_path, dest):
    root = _write(
        tmp_path,
        {
            "stack.toml": HEAD + f'env_file = ".env"\n\n[[files]]\nsrc = "x"\ndest = "{dest}"\n',
            ".env": "A=1\n",
            "x": "x\n",
            "src/a/Dockerfile": "FROM redis:7\n",
        },
    )
    assert f"would write {dest}" in _error(root)


def test_a_source_outside_the_stack_folder_is_refused(tmp_path):
    (tmp_path / "outside.txt").write_text("secret\n")
    root = _write(
        tmp_path / "stack",
        {
            "stack.toml": HEAD + '\n[[files]]\nsrc = "../outside.txt"\ndest = "copy.txt"\n',
            "src/a/Dockerfile": "FROM redis:7\n",
        },
    )
    assert "../outside.txt is outside the stack folder" in _error(root)


def test_exclude_drops_a_discovered_service_and_an_unknown_name_is_an_error(tmp_path):
    files = {
        "stack.toml": HEAD + 'exclude = ["fixture"]\n',
        "src/a/Dockerfile": "FROM redis:7\n",
        "src/fixture/Dockerfile": "FROM not-a-real/image:0\n",
    }
    root = _write(tmp_path, files)
    assert [s.name for s in load(root).services] == ["a"]
    (root / "stack.toml").write_text(HEAD + 'exclude = ["fixtrue"]\n')
    message = _error(root)
    assert "stack.exclude names 'fixtrue', which is no service" in message and "stack.toml:6" in message


def test_build_args_precedence_env_then_stack_then_service(tmp_path):
    root = _write(
        tmp_path,
        {
            "stack.toml": HEAD
            + 'env_file = ".env"\nenv_build_args = true\nbuild_args = { A = "stack", B = "stack" }\n\n'
            + '[services.a]\nbuild_args = { B = "service" }\n',
            ".env": "A=env\nB=env\nC=env\n",
            "src/a/Dockerfile": "ARG A\nARG B\nARG C\nFROM redis:7\n",
        },
    )
    (service,) = load(root).services
    assert {k: service.build_args[k] for k in "ABC"} == {"A": "stack", "B": "service", "C": "env"}
    assert service.build_args["STACK_TAG"] == "v1"


def test_env_args_decide_from_lines_through_args(tmp_path):
    root = _write(
        tmp_path,
        {
            "stack.toml": HEAD + 'env_file = ".env"\nenv_build_args = true\n',
            ".env": "REDIS_VERSION=6\n",
            "src/a/Dockerfile": "ARG REDIS_VERSION=7\nFROM redis:${REDIS_VERSION}\n",
        },
    )
    assert [b.ref.familiar for b in _discover(root).bases] == ["redis:6"]


def test_a_dockerfile_outside_the_stack_context_is_an_error(tmp_path):
    root = _write(tmp_path, {"stack.toml": HEAD + 'context = "src/a"\n', "src/a/Dockerfile": "FROM x:1\n"})
    _write(root, {"src/b/Dockerfile": "FROM y:1\n"})
    assert "Dockerfile src/b/Dockerfile is outside stack.context 'src/a'" in _error(root)


def test_the_tree_globs_planned_files_with_pathlib_semantics(tmp_path):
    _write(tmp_path, {"src/a/Dockerfile": "x", "src/b/c/Dockerfile": "x"})
    tree = StackTree(tmp_path, {tmp_path / "src/new/Dockerfile": b"FROM x\n", tmp_path / "other/Dockerfile": None})
    assert [p.relative_to(tmp_path).as_posix() for p in tree.glob("src/*/Dockerfile")] == [
        "src/a/Dockerfile",
        "src/new/Dockerfile",
    ]
    assert len(tree.glob("**/Dockerfile")) == 4
    assert tree.read_text(tmp_path / "src/new/Dockerfile") == "FROM x\n"
    assert tree.is_file(tmp_path / "other/Dockerfile") and not (tmp_path / "other/Dockerfile").exists()


COMPOSE_STACK = HEAD + 'compose = ["compose.yml"]\ncompose_builds = true\n'


def test_compose_build_sections_are_services_and_stack_tables_override_key_by_key(tmp_path):
    root = _write(
        tmp_path,
        {
            "stack.toml": COMPOSE_STACK + '\n[services.api]\ntarget = "prod"\nbuild_args = { B = "table" }\n',
            "compose.yml": """
                services:
                  api:
                    image: team/api:2
                    build:
                      context: ./apps
                      dockerfile: api.Dockerfile
                      target: dev
                      args: { A: compose, B: compose }
                  db:
                    image: postgres:16
            """,
            "apps/api.Dockerfile": "FROM redis:7 AS dev\nFROM redis:7 AS prod\n",
            "src/web/Dockerfile": "FROM nginx:1\n",
        },
    )
    found = _discover(root)
    api = next(s for s in found.stack.services if s.name == "api")
    assert api.context == root.resolve() / "apps"
    assert api.dockerfile == root.resolve() / "apps/api.Dockerfile"
    assert api.target == "prod"  # the table's key wins; the others stay compose's
    assert api.image == "team/api:2"
    assert (api.build_args["A"], api.build_args["B"]) == ("compose", "table")
    assert [b.ref.familiar for b in found.bases] == ["nginx:1", "postgres:16", "redis:7"]  # team/api is built


def test_compose_services_building_one_image_alike_are_one_build(tmp_path):
    build = "build: { context: ., dockerfile: w/Dockerfile }"
    root = _write(
        tmp_path,
        {
            "stack.toml": COMPOSE_STACK,
            "compose.yml": f"services:\n  w-cpu:\n    image: w:1\n    {build}\n  w-gpu:\n    image: w:1\n    {build}\n",
            "w/Dockerfile": "FROM busybox:1\n",
        },
    )
    (service,) = _discover(root).stack.services
    assert (service.name, service.also, service.image) == ("w-cpu", ("w-gpu",), "w:1")


def test_compose_services_building_one_image_differently_are_an_error(tmp_path):
    root = _write(
        tmp_path,
        {
            "stack.toml": COMPOSE_STACK,
            "compose.yml": """
                services:
                  a: { image: "w:1", build: { context: ., dockerfile: a/Dockerfile } }
                  b: { image: "w:1", build: { context: ., dockerfile: b/Dockerfile } }
            """,
            "a/Dockerfile": "FROM busybox:1\n",
            "b/Dockerfile": "FROM busybox:1\n",
        },
    )
    message = _error(root)
    assert "services 'a' and 'b' both build w:1 from different definitions" in message
    assert "compose.yml:3: services.b.build" in message


@pytest.mark.parametrize("template", [False, True])
def test_services_that_compose_makes_alike_are_one_build_with_or_without_templates(tmp_path, template):
    """Before the compose layer joins (templates render first), x and y differ; after, they build alike."""
    files = {
        "stack.toml": """
            [stack]
            name = "t"
            compose = ["compose.yaml"]
            compose_builds = true

            [services.x]
            context = "."
            image = "foo"
            build_args = { A = "1" }

            [services.y]
            context = "."
            image = "foo"
        """,
        "compose.yaml": "services:\n  y:\n    build:\n      context: .\n      args:\n        A: '1'\n",
        "Dockerfile": "ARG A\nFROM busybox:1\n",
    }
    if template:
        files["stack.toml"] += '\n[[templates]]\nsrc = "t.j2"\ndest = "out.txt"\n'
        files["t.j2"] = "{{ stack.services | length }}\n"
    (service,) = _discover(_write(tmp_path, files)).stack.services
    assert (service.name, service.also, service.image) == ("x", ("y",), "foo:latest")


def test_tag_option_replaces_the_tag_of_a_compose_image(tmp_path):
    root = _write(
        tmp_path,
        {
            "stack.toml": COMPOSE_STACK,
            "compose.yml": "services:\n  a: { image: 'team/a:1', build: . }\n",
            "Dockerfile": "FROM busybox:1\n",
        },
    )
    (service,) = pipeline.discover(str(root), network="external", tag="v9").stack.services
    assert service.image == "team/a:v9"


def test_a_compose_file_rendered_from_a_template_is_read_as_rendered(tmp_path):
    root = _write(
        tmp_path,
        {
            "stack.toml": HEAD
            + 'env_file = ".env"\ncompose = ["compose.yml"]\n\n[[templates]]\nsrc = "compose.yml.tpl"\ndest = "compose.yml"\n',
            ".env": "SEAWEEDFS_VERSION=3.80\n",
            "compose.yml.tpl": "services:\n  s3:\n    image: chrislusf/seaweedfs:{{SEAWEEDFS_VERSION}}\n",
            "src/a/Dockerfile": "FROM redis:7\n",
        },
    )
    assert [b.ref.familiar for b in _discover(root).bases] == ["chrislusf/seaweedfs:3.80", "redis:7"]
    assert not (root / "compose.yml").exists()


# Found by review: each of these failed before its fix.


def test_a_dockerfile_named_through_dotdot_is_one_resolved_file(tmp_path):
    root = _write(
        tmp_path,
        {
            "stack.toml": HEAD.replace('services = "src/*/Dockerfile"\n', "")
            + '\n[services.app]\ncontext = "src/app"\ndockerfile = "../shared/Dockerfile"\n',
            "src/shared/Dockerfile": "FROM alpine:3\nCOPY main.py /\n",
            "src/app/main.py": "print()\n",
        },
    )
    (spec,) = pipeline.prepare(str(root), network="external").desired.builds
    assert spec.dockerfile == root.resolve() / "src/shared/Dockerfile"
    from reconciler.context import DOCKERFILE_IN_TAR, pack

    packed = pack(spec.context, spec.dockerfile, spec.sources)
    assert packed.dockerfile == DOCKERFILE_IN_TAR  # outside the context: sent under its own name, as before
    assert packed.record == spec.files


def test_writing_a_dockerfile_outside_the_context_comes_before_the_build(tmp_path):
    from reconciler.actual import ObservedImages
    from reconciler.plan import plan

    root = _write(
        tmp_path,
        {
            "stack.toml": HEAD.replace('services = "src/*/Dockerfile"\n', "")
            + '\n[services.app]\ncontext = "src/app"\ndockerfile = "../../docker/Dockerfile"\n\n'
            + '[[templates]]\nsrc = "docker/Dockerfile.tpl"\ndest = "docker/Dockerfile"\n',
            "docker/Dockerfile.tpl": "FROM scratch\n",
            "src/app/x": "x\n",
        },
    )
    run = pipeline.prepare(str(root), network="external")
    result = plan(run.desired, ObservedImages(), run.network, {})
    build = next(a for a in result.actions if a.address == "build[app]")
    assert build.depends_on == ["write[docker/Dockerfile]"]


def test_a_copy_through_a_symlinked_folder_reads_the_whole_context(tmp_path):
    from reconciler.context import HashCache, build_paths, context_record
    from reconciler.dockerfiles import Source

    context = tmp_path / "ctx"
    _write(context, {"real/file.txt": "one\n", "other.txt": "x\n", "Dockerfile": "FROM x\n"})
    (context / "data").symlink_to("real")
    sources = [Source("data/file.txt", 2, "COPY")]
    assert "real/file.txt" in build_paths(context, context / "Dockerfile", None, sources)  # no false "matches nothing"
    before = context_record(context, context / "Dockerfile", HashCache(tmp_path / "h.json"), None, sources)
    (context / "real/file.txt").write_text("two\n")
    after = context_record(context, context / "Dockerfile", HashCache(tmp_path / "h.json"), None, sources)
    assert before != after  # an edit behind the link is seen


def test_a_stack_table_dockerfile_over_a_compose_build_section(tmp_path):
    root = _write(
        tmp_path,
        {
            "stack.toml": COMPOSE_STACK + '\n[services.app]\ndockerfile = "Dockerfile.prod"\n',
            "compose.yml": "services:\n  app:\n    build: ./app\n",
            "app/Dockerfile.prod": "FROM busybox:1\n",
        },
    )
    (service,) = _discover(root).stack.services
    assert service.dockerfile == root.resolve() / "app/Dockerfile.prod"


def test_a_stack_table_context_keeps_the_compose_dockerfile(tmp_path):
    root = _write(
        tmp_path,
        {
            "stack.toml": COMPOSE_STACK + '\n[services.app]\ncontext = "other"\n',
            "compose.yml": "services:\n  app:\n    build: { context: ./app, dockerfile: Dockerfile.dev }\n",
            "other/Dockerfile.dev": "FROM busybox:1\n",
        },
    )
    (service,) = _discover(root).stack.services
    assert service.dockerfile == root.resolve() / "other/Dockerfile.dev"


def test_a_source_glob_reaching_outside_the_stack_folder_is_refused(tmp_path):
    _write(tmp_path, {"outside/secret.txt": "s\n"})
    root = _write(
        tmp_path / "stack",
        {
            "stack.toml": HEAD + '\n[[files]]\nsrc = "../outside/*.txt"\ndest = "copied/{name}.txt"\n',
            "src/a/Dockerfile": "FROM redis:7\n",
        },
    )
    assert "outside the stack folder" in _error(root)


def test_a_destination_that_is_the_stack_folder_says_so(tmp_path):
    root = _write(
        tmp_path,
        {
            "stack.toml": HEAD + '\n[[templates]]\nsrc = "t.tpl"\ndest = "{dir}"\n',
            "t.tpl": "x\n",
            "src/a/Dockerfile": "FROM redis:7\n",
        },
    )
    assert "destination . is the stack folder itself" in _error(root)


def test_env_reads_only_the_network_section_of_a_fresh_checkout(tmp_path):
    import subprocess
    import sys

    matrix = Path(__file__).parent.parent / "stacks" / "matrix"
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "env", "--network", "external", "-s", str(matrix)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "RECONCILE_CACHE_DIR": str(tmp_path)},
        cwd=Path(__file__).parent.parent.parent,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "external" in result.stdout


def test_a_compose_service_merged_into_another_build_is_targetable_by_its_name(tmp_path):
    build = "build: { context: ., dockerfile: w/Dockerfile }"
    root = _write(
        tmp_path,
        {
            "stack.toml": COMPOSE_STACK,
            "compose.yml": f"services:\n  w-cpu:\n    image: w:1\n    {build}\n  w-gpu:\n    image: w:1\n    {build}\n",
            "w/Dockerfile": "FROM busybox:1\n",
        },
    )
    run = pipeline.prepare(str(root), network="external", targets=["w-gpu"], replace=["w-gpu"])
    assert run.replace == frozenset({"w-cpu"})
