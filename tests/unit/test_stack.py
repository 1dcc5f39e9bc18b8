"""The stack file: loading, service discovery and one-line errors."""

import textwrap
from pathlib import Path

import pytest

from reconciler.errors import InputError
from reconciler.stack import NetworkSection, StackFile, find_stack_file, load, locate


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root / "stack.toml"


def _load_error(root: Path, stack_toml: str, files: dict[str, str] | None = None) -> str:
    path = _write(root, {"stack.toml": stack_toml, **(files or {})})
    with pytest.raises(InputError) as info:
        load(path)
    message = str(info.value)
    assert "\n" not in message
    return message


VALID = """
[stack]
name = "ai-infra"
tag = "v1"
image_prefix = "ai-infra-"
services = "src/*/Dockerfile"
compose = ["compose.yml"]
env_file = ".env"
images = ["nvidia/cuda:12.4.1-base-ubuntu22.04"]

[network]
mode = "internal"
internal_registry = "harbor.test/aihpc/"
alias_prefix = "localhost"
probe_timeout = 1.5
external_probes = ["http://127.0.0.1:1/v2/"]

[services.api]
target = "runtime"
build_args = { GO_VERSION = "1.25" }

[services.docs]
context = "documentation"
dockerfile = "build/Containerfile"
image = "registry.test/team/docs"
"""

FILES = {
    "src/api/Dockerfile": "FROM golang:1.25\n",
    "src/web/Dockerfile": "FROM nginx:stable\n",
    "src/README.md": "not a service\n",
    "documentation/build/Containerfile": "FROM python:3.11\n",
    ".env": "",  # env_file is read with the stack file: a missing one is an error
}


def test_load_reads_a_valid_stack(tmp_path):
    stack = load(_write(tmp_path, {"stack.toml": VALID, **FILES}))
    assert stack.path == (tmp_path / "stack.toml").resolve()
    assert stack.root == tmp_path.resolve()
    cfg = stack.config
    assert cfg.stack.name == "ai-infra"
    assert cfg.stack.compose == ["compose.yml"]
    assert cfg.stack.images == ["nvidia/cuda:12.4.1-base-ubuntu22.04"]
    assert cfg.network.mode == "internal"
    assert cfg.network.internal_registry == "harbor.test/aihpc"  # trailing slash dropped
    assert cfg.network.probe_timeout == 1.5
    assert cfg.network.external_probes == ["http://127.0.0.1:1/v2/"]
    assert cfg.network.internal_probes is None


def test_load_applies_defaults(tmp_path):
    stack = load(_write(tmp_path, {"stack.toml": '[stack]\nname = "s"\n'}))
    assert stack.config.stack.tag == "latest"
    assert stack.config.network.mode == "auto"
    assert stack.config.network.internal_registry == "aiharbor.msxf.local/aihpc"
    assert stack.config.network.alias_prefix == "localhost"
    assert stack.services == []


def test_load_discovers_services_by_glob_and_merges_explicit_settings(tmp_path):
    stack = load(_write(tmp_path, {"stack.toml": VALID, **FILES}))
    by_name = {s.name: s for s in stack.services}
    assert list(by_name) == ["api", "docs", "web"]

    api = by_name["api"]
    assert api.context == (tmp_path / "src/api").resolve()
    assert api.dockerfile == (tmp_path / "src/api/Dockerfile").resolve()
    assert api.target == "runtime"
    assert api.build_args == {"STACK_TAG": "v1", "GO_VERSION": "1.25"}  # STACK_TAG: the tag being built
    assert api.image == "ai-infra-api:v1"

    web = by_name["web"]
    assert (web.target, web.build_args, web.image) == (None, {"STACK_TAG": "v1"}, "ai-infra-web:v1")

    docs = by_name["docs"]
    assert docs.context == (tmp_path / "documentation").resolve()
    assert docs.dockerfile == (tmp_path / "documentation/build/Containerfile").resolve()
    assert docs.image == "registry.test/team/docs:v1"


def test_load_uses_the_file_name_the_glob_matched(tmp_path):
    stack = load(
        _write(
            tmp_path,
            {
                "stack.toml": '[stack]\nname = "s"\nservices = "images/*/Containerfile"\n',
                "images/tool/Containerfile": "FROM alpine:3\n",
            },
        )
    )
    [tool] = stack.services
    assert tool.dockerfile == (tmp_path / "images/tool/Containerfile").resolve()


def test_load_explicit_context_replaces_the_discovered_one(tmp_path):
    stack = load(
        _write(
            tmp_path,
            {
                "stack.toml": '[stack]\nname = "s"\nservices = "src/*/Dockerfile"\n[services.api]\ncontext = "other"\n',
                "src/api/Dockerfile": "FROM alpine:3\n",
                "other/Dockerfile": "FROM debian:12\n",
            },
        )
    )
    [api] = stack.services
    assert api.dockerfile == (tmp_path / "other/Dockerfile").resolve()


def test_load_accepts_a_folder_holding_stack_toml(tmp_path):
    _write(tmp_path, {"stack.toml": '[stack]\nname = "s"\n'})
    assert load(tmp_path).path == (tmp_path / "stack.toml").resolve()


def test_find_stack_file_uses_environment_variable(tmp_path, monkeypatch):
    _write(tmp_path, {"stack.toml": '[stack]\nname = "s"\n'})
    monkeypatch.setenv("RECONCILE_STACK", str(tmp_path))
    assert find_stack_file(None) == (tmp_path / "stack.toml").resolve()


def test_stack_rel_shows_paths_inside_the_stack_relative(tmp_path):
    stack = load(_write(tmp_path, {"stack.toml": VALID, **FILES}))
    assert stack.rel(stack.root / "src/api/Dockerfile") == "src/api/Dockerfile"
    assert stack.rel(Path("/elsewhere/Dockerfile")) == "/elsewhere/Dockerfile"


def test_load_missing_stack_file_names_it(tmp_path):
    with pytest.raises(InputError) as info:
        load(tmp_path / "nope.toml")
    assert "nope.toml" in str(info.value)
    assert "not found" in str(info.value)
    assert "\n" not in str(info.value)


def test_load_folder_without_stack_toml_names_it(tmp_path):
    with pytest.raises(InputError) as info:
        load(tmp_path)
    assert str(tmp_path / "stack.toml") in str(info.value)


def test_load_unknown_key_names_key_and_line(tmp_path):
    message = _load_error(tmp_path, '[stack]\nname = "s"\n\n[network]\nmode = "auto"\nmoed = "internal"\n')
    assert "stack.toml:6:" in message
    assert "unknown key 'network.moed'" in message


def test_load_unknown_key_in_a_service_table(tmp_path):
    message = _load_error(
        tmp_path,
        '[stack]\nname = "s"\n[services.api]\ncontext = "api"\ntaget = "runtime"\n',
        {"api/Dockerfile": "FROM alpine:3\n"},
    )
    assert "stack.toml:5:" in message
    assert "unknown key 'services.api.taget'" in message


def test_load_unknown_table_names_its_line(tmp_path):
    message = _load_error(tmp_path, '[stack]\nname = "s"\n\n[netwrok]\nmode = "auto"\n')
    assert "stack.toml:4:" in message
    assert "unknown key 'netwrok'" in message


def test_load_wrong_type_names_key_and_line(tmp_path):
    message = _load_error(tmp_path, '[stack]\nname = "s"\n[network]\nprobe_timeout = "fast"\n')
    assert "stack.toml:4:" in message
    assert "network.probe_timeout" in message


def test_load_wrong_type_of_list(tmp_path):
    message = _load_error(tmp_path, '[stack]\nname = "s"\ncompose = "compose.yml"\n')
    assert "stack.toml:3:" in message
    assert "stack.compose" in message


def test_load_missing_stack_name(tmp_path):
    message = _load_error(tmp_path, '[stack]\ntag = "v1"\n')
    assert "stack.toml:1:" in message
    assert "missing key 'stack.name'" in message


def test_load_missing_stack_table(tmp_path):
    message = _load_error(tmp_path, '[network]\nmode = "auto"\n')
    assert "stack.toml" in message
    assert "missing key 'stack'" in message


def test_load_bad_network_mode(tmp_path):
    message = _load_error(tmp_path, '[stack]\nname = "s"\n[network]\nmode = "intranet"\n')
    assert "stack.toml:4:" in message
    assert "network.mode" in message


def test_load_invalid_internal_registry(tmp_path):
    message = _load_error(tmp_path, '[stack]\nname = "s"\n[network]\ninternal_registry = "Harbor Test/aihpc"\n')
    assert "stack.toml:4:" in message
    assert "network.internal_registry" in message
    assert "invalid registry prefix" in message


def test_load_probe_must_be_a_url(tmp_path):
    message = _load_error(tmp_path, '[stack]\nname = "s"\n[network]\nexternal_probes = ["registry-1.docker.io"]\n')
    assert "stack.toml:4:" in message
    assert "http:// or https://" in message


@pytest.mark.parametrize("timeout", ["0", "-1", "61"])
def test_load_probe_timeout_out_of_range(tmp_path, timeout):
    message = _load_error(tmp_path, f'[stack]\nname = "s"\n[network]\nprobe_timeout = {timeout}\n')
    assert "network.probe_timeout" in message


@pytest.mark.parametrize("timeout", ["0", "-1", "3601", "inf", "nan"])
def test_load_stall_timeout_out_of_range(tmp_path, timeout):
    message = _load_error(tmp_path, f'[stack]\nname = "s"\n[network]\nstall_timeout = {timeout}\n')
    assert "stack.toml:4:" in message and "network.stall_timeout" in message


def test_stall_timeout_defaults_to_a_minute():
    assert NetworkSection().stall_timeout == 60


def test_load_lists_every_problem_unknown_keys_first_with_the_closest_valid_one(tmp_path):
    path = _write(tmp_path, {"stack.toml": '[stack]\nnmae = "s"\nbar = 2\n\n[network]\nmode = "intranet"\n'})
    with pytest.raises(InputError) as info:
        load(path)
    lines = [line.replace(f"{path}", "stack.toml") for line in [str(info.value), *info.value.more]]
    assert lines == [
        "stack.toml:2: unknown key 'stack.nmae' (did you mean 'name'?); remove it or fix its spelling "
        "(see `reconcile schema`)",
        "stack.toml:3: unknown key 'stack.bar'; remove it or fix its spelling (see `reconcile schema`)",
        "stack.toml:6: network.mode = 'intranet': Input should be 'auto', 'internal' or 'external'; "
        "fix the value (see `reconcile schema`)",
        "stack.toml:1: missing key 'stack.name'; add it",
    ]


def test_load_toml_syntax_error_has_line(tmp_path):
    message = _load_error(tmp_path, '[stack]\nname = "s"\nimages = [\n  "redis:7"\n  "nginx"\n]\n')
    assert "not valid TOML" in message
    assert "stack.toml:5:" in message
    assert "(at line" not in message


def test_load_glob_matching_nothing(tmp_path):
    message = _load_error(tmp_path, '[stack]\nname = "s"\nservices = "src/*/Dockerfile"\n')
    assert "stack.toml:3:" in message
    assert "matches no Dockerfile" in message


def test_load_bad_service_name_from_folder(tmp_path):
    message = _load_error(
        tmp_path, '[stack]\nname = "s"\nservices = "src/*/Dockerfile"\n', {"src/My_App/Dockerfile": "FROM alpine\n"}
    )
    assert "stack.toml" in message
    assert "'My_App'" in message


def test_load_bad_service_name_from_table(tmp_path):
    message = _load_error(
        tmp_path, '[stack]\nname = "s"\n\n[services."web-"]\ncontext = "web"\n', {"web/Dockerfile": "FROM alpine\n"}
    )
    assert "'web-'" in message
    assert "not a valid image name component" in message


def test_load_missing_dockerfile(tmp_path):
    (tmp_path / "api").mkdir()
    message = _load_error(tmp_path, '[stack]\nname = "s"\n\n[services.api]\ncontext = "api"\n')
    assert "stack.toml:4:" in message
    assert "Dockerfile" in message and "not found" in message


def test_load_service_without_context(tmp_path):
    message = _load_error(tmp_path, '[stack]\nname = "s"\n[services.api]\ntarget = "x"\n')
    assert "stack.toml:3:" in message
    assert "has no context" in message


def test_load_invalid_service_image(tmp_path):
    message = _load_error(
        tmp_path,
        '[stack]\nname = "s"\ntag = "-bad"\n[services.api]\ncontext = "api"\n',
        {"api/Dockerfile": "FROM alpine\n"},
    )
    assert "stack.toml:4:" in message
    assert "api:-bad" in message


@pytest.mark.parametrize(
    ("text", "loc", "line"),
    [
        ('[stack]\nname = "s"\n', ["stack", "name"], 2),
        ('[stack]\nname = "s"\n', ["stack"], 1),
        ('[stack]\nname = "s"\n[network]\nname = "n"\n', ["network", "name"], 4),
        ('[stack]\nname = "s"\n[network]\n', ["network", "mode"], 3),
        ('[services.api]\n"target" = "x"\n', ["services", "api", "target"], 2),
        ('[stack]\nname = "s"\n', ["network"], None),
    ],
)
def test_locate_finds_key_lines(text, loc, line):
    assert locate(text, loc) == line


def test_stack_file_schema_is_available():
    schema = StackFile.model_json_schema()
    assert set(schema["properties"]) == {"stack", "network", "services", "templates", "files"}
