"""Rendered templates and copied files against the real engine: what the plan
shows, what apply writes (atomically, with the right mode), the rebuild of the
service whose context holds them, and the mistakes that stop everything."""

from __future__ import annotations

import os
import stat

import pytest

from tests.conftest import tags
from tests.integration.test_builds import apply_json, four_steps, read

ENV = {"AI_INFRA_NETWORK_ENV": "external", "RECONCILE_TEST_OWNER": "alice"}
WEB = "FROM redis:7-alpine\nCOPY conf/ /conf/\nCOPY run.sh /run.sh\n"
ENTRIES = """
[[templates]]
src = "templates/app.conf.j2"
dest = "src/web/conf/app.conf"
vars = { greeting = "hello", ports = [80, 443] }

[[templates]]
src = "templates/run.sh.j2"
dest = "src/web/run.sh"
mode = "0750"

[[files]]
src = "config/motd"
dest = "src/web/conf/motd"
"""
APP_CONF = (
    "# {{ stack.name }}:{{ stack.tag }} on the {{ stack.network }} network\n"
    "greeting = {{ vars.greeting }}\n"
    "{% for port in vars.ports %}listen {{ port }}\n{% endfor %}"
    "owner = {{ env.RECONCILE_TEST_OWNER }}\n"
)
RENDERED = "# t:latest on the external network\ngreeting = hello\nlisten 80\nlisten 443\nowner = alice\n"
MOTD = "Welcome. {{ not rendered }}\n"


def web_stack(make_stack):
    stack = make_stack({"web": WEB}, toml='image_prefix = "t-"\n' + ENTRIES)
    (stack / "templates").mkdir()
    (stack / "templates/app.conf.j2").write_text(APP_CONF)
    (stack / "templates/app.conf.j2").chmod(0o640)  # a new file gets its source's mode
    (stack / "templates/run.sh.j2").write_text("#!/bin/sh\necho {{ stack.name }}\n")
    (stack / "config").mkdir()
    (stack / "config/motd").write_text(MOTD)
    # The copy's destination exists, with other content and its own mode: the mode is kept.
    (stack / "src/web/conf").mkdir()
    (stack / "src/web/conf/motd").write_text("old motd\n")
    (stack / "src/web/conf/motd").chmod(0o600)
    return stack


def mode(path) -> str:
    return f"{stat.S_IMODE(path.stat().st_mode):04o}"


def listing(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_templates_and_files_are_planned_with_diffs_written_atomically_and_built_in(cli, daemon, make_stack):
    stack = web_stack(make_stack)

    text = cli("plan", "-s", str(stack), env=ENV)
    assert text.code == 0, text.err
    assert "  + write src/web/conf/app.conf (0640, from template app.conf.j2)" in text.out
    assert "  ~ write src/web/conf/motd (0600, from file motd)" in text.out
    assert "      +greeting = hello\n" in text.out
    assert "      -old motd\n" in text.out

    plan, applied = four_steps(cli, stack, env=ENV)
    writes = {a["path"]: a for a in plan["actions"] if a["kind"] == "write"}
    assert [(a["address"], a["reason"], a["mode"]) for a in writes.values()] == [
        ("write[src/web/conf/app.conf]", "missing", "0640"),
        ("write[src/web/run.sh]", "missing", "0750"),
        ("write[src/web/conf/motd]", "content-changed", "0600"),
    ]
    assert writes["src/web/conf/app.conf"]["diff"] == (
        "--- /dev/null\n+++ b/src/web/conf/app.conf\n@@ -0,0 +1,5 @@\n"
        + "".join(f"+{line}\n" for line in RENDERED.splitlines())
    )
    assert writes["src/web/conf/motd"]["diff"].endswith("-old motd\n+Welcome. {{ not rendered }}\n")
    build = plan["actions"][-1]
    assert build["address"] == "build[web]"
    assert set(build["depends_on"]) == {"pull[redis:7-alpine]", *(f"write[{p}]" for p in writes)}
    assert applied.summary["written"] == 3 and applied.summary["built"] == 1

    web = stack / "src/web"
    assert (web / "conf/app.conf").read_text() == RENDERED
    assert (web / "conf/motd").read_text() == MOTD  # copied, not rendered
    assert (web / "run.sh").read_text() == "#!/bin/sh\necho t\n"
    assert (mode(web / "conf/app.conf"), mode(web / "run.sh"), mode(web / "conf/motd")) == ("0640", "0750", "0600")
    # No temp file left beside a destination.
    assert listing(web) == ["Dockerfile", "conf", "conf/app.conf", "conf/motd", "run.sh"]
    assert read(daemon, "t-web:latest", "/conf/app.conf") == RENDERED

    # Editing the template: a write with its diff, and the rebuild of the service it lands in, after it.
    (stack / "templates/app.conf.j2").write_text(APP_CONF.replace("{{ vars.greeting }}", "{{ vars.greeting | upper }}"))
    before = tags(daemon)["t-web:latest"]
    text = cli("plan", "-s", str(stack), env=ENV)
    assert "  ~ write src/web/conf/app.conf (0640, from template app.conf.j2)" in text.out
    assert "      -greeting = hello\n      +greeting = HELLO\n" in text.out
    plan, _ = four_steps(cli, stack, env=ENV)
    assert [(a["address"], a["reason"]) for a in plan["actions"]] == [
        ("write[src/web/conf/app.conf]", "content-changed"),
        ("build[web]", "inputs-changed"),
    ]
    assert "\n-greeting = hello\n+greeting = HELLO\n listen 80\n" in plan["actions"][0]["diff"]
    assert plan["actions"][1]["detail"] == "context files changed: conf/app.conf"
    assert plan["actions"][1]["depends_on"] == ["write[src/web/conf/app.conf]"]
    assert tags(daemon)["t-web:latest"] != before
    assert "greeting = HELLO\n" in read(daemon, "t-web:latest", "/conf/app.conf")
    assert mode(web / "conf/app.conf") == "0640"


def test_an_environment_change_rerenders_and_a_mode_drift_is_put_back_without_a_rebuild(cli, daemon, make_stack):
    stack = web_stack(make_stack)
    assert apply_json(cli, stack, env=ENV).code == 0

    (stack / "src/web/run.sh").chmod(0o755)  # explicit mode 0750: a drift
    plan, _ = four_steps(cli, stack, env=ENV)
    assert [(a["address"], a["reason"], a["detail"], a["diff"]) for a in plan["actions"]] == [
        ("write[src/web/run.sh]", "mode-changed", "mode is 0755, want 0750", "")
    ]
    assert mode(stack / "src/web/run.sh") == "0750"

    plan, _ = four_steps(cli, stack, env={**ENV, "RECONCILE_TEST_OWNER": "bob"})
    assert [(a["address"], a["reason"]) for a in plan["actions"]] == [
        ("write[src/web/conf/app.conf]", "content-changed"),
        ("build[web]", "inputs-changed"),
    ]
    assert "-owner = alice\n+owner = bob\n" in plan["actions"][0]["diff"]


BAD = {
    # name: (stack.toml entries after a good one, template text, expected parts of the one error line)
    "dest escapes with ..": (
        '[[templates]]\nsrc = "templates/bad.j2"\ndest = "../outside.conf"\n',
        "fine\n",
        [
            "stack.toml:20: templates[2].dest",
            "destination ../outside.conf is outside the stack folder",
            "give a path inside",
        ],
    ),
    "absolute dest": (
        '[[templates]]\nsrc = "templates/bad.j2"\ndest = "/tmp/reconcile-absolute.conf"\n',
        "fine\n",
        ["stack.toml:20: templates[2].dest", "destination /tmp/reconcile-absolute.conf is outside the stack folder"],
    ),
    "dest escapes through a symlink": (
        '[[files]]\nsrc = "templates/bad.j2"\ndest = "linked/x.conf"\n',
        "fine\n",
        ["stack.toml:20: files[1].dest", "outside the stack folder (through a symlink)"],
    ),
    "undefined variable": (
        '[[templates]]\nsrc = "templates/bad.j2"\ndest = "src/web/bad.conf"\n',
        "line one\nport = {{ nope }}\n",
        ["templates/bad.j2:2:", "undefined variable", "'nope' is undefined", "define the name under vars"],
    ),
    "sandbox escape": (
        '[[templates]]\nsrc = "templates/bad.j2"\ndest = "src/web/bad.conf"\n',
        "line one\n{{ ''.__class__.__mro__ }}\n",
        ["templates/bad.j2:2:", "unsafe access in template", "__class__"],
    ),
    "template syntax": (
        '[[templates]]\nsrc = "templates/bad.j2"\ndest = "src/web/bad.conf"\n',
        "one\ntwo\n{% if %}\n",
        ["templates/bad.j2:3:", "template syntax error", "fix the template"],
    ),
}


@pytest.mark.parametrize("command", ["plan", "apply"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_template_or_destination_exits_1_with_one_line_and_writes_nothing(
    cli, daemon, make_stack, tmp_path, case, command
):
    entry, template, expected = BAD[case]
    stack = make_stack({"web": WEB}, toml=ENTRIES + entry)  # the good entries come first and must not be written
    (stack / "templates").mkdir()
    (stack / "templates/app.conf.j2").write_text(APP_CONF)
    (stack / "templates/run.sh.j2").write_text("#!/bin/sh\n")
    (stack / "templates/bad.j2").write_text(template)
    (stack / "config").mkdir()
    (stack / "config/motd").write_text(MOTD)
    (tmp_path / "elsewhere").mkdir()
    (stack / "linked").symlink_to(tmp_path / "elsewhere")
    folder_before = {
        p: p.read_bytes() if p.is_file() else None for p in sorted(tmp_path.rglob("*")) if "cache" not in p.parts
    }
    daemon_before = tags(daemon)

    extra = ["--auto-approve"] if command == "apply" else []
    result = cli(command, *extra, "-s", str(stack), env=ENV)

    assert result.code == 1, result.out + result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    for part in expected:
        assert part in lines[0]
    assert "Traceback" not in result.out + result.err
    assert tags(daemon) == daemon_before
    after = {p: p.read_bytes() if p.is_file() else None for p in sorted(tmp_path.rglob("*")) if "cache" not in p.parts}
    assert after == folder_before
    assert not os.path.exists("/tmp/reconcile-absolute.conf")
