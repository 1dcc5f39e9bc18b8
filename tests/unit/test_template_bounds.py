"""Templates are bounded in time, output and memory: what would pass a bound is refused
before it takes the time or the memory, as one line naming the template and its line."""

import time
import tracemalloc
from pathlib import Path

import pytest

from reconciler import files
from reconciler.errors import InputError
from reconciler.files import desired_files
from reconciler.network import NetworkDecision
from reconciler.stack import load

NETWORK = NetworkDecision(
    mode="internal", source="test", registry="harbor.test/aihpc", registry_source="test", alias_prefix="localhost"
)


def _render(root: Path, template: str) -> bytes:
    (root / "t.j2").write_text(template)
    (root / "stack.toml").write_text('[stack]\nname = "s"\n\n[[templates]]\nsrc = "t.j2"\ndest = "out"\n')
    (spec,) = desired_files(load(root), NETWORK)
    return spec.content


def _refused(root: Path, template: str) -> tuple[InputError, float]:
    """The error, and the memory (MiB) the attempt took at its peak."""
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as caught:
            _render(root, template)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert "\n" not in str(caught.value)
    return caught.value, peak


HUGE = [
    ("{{ ('a'*3*10**9)|length }}", "'*' would make 3,000,000,000 characters"),
    ("{{ 'x'*300000000 }}", "'*' would make 300,000,000 characters"),
    ("{{ [0]*10**8 }}", "'*' would make 100,000,000 items"),
    ("{% set s = 'a'*10**7 %}{{ s + s }}", "'+' would make 20,000,000 characters"),
    ("{% set s = 'a'*10**7 %}{{ s ~ s }}", "'~' would make 20,000,000 characters"),
    ("{{ 2**(10**9) }}", "'**' would make a number of about 2,000,000,000 bits"),
    ("{{ '%*s' % (10**9, 'a') }}", "'%' would make 1,000,000,014 characters"),
    ("{{ '%0999999999d'|format(1) }}", "format() would make"),
    ("{{ '{:>999999999}'.format(1) }}", "format() would make"),
    ("{{ '{:>{w}}'.format(1, w=10**9) }}", "format() would make"),
    ("{{ 'a'|center(10**9) }}", "center() would make 1,000,000,000 characters"),
    ("{{ 'a'.ljust(10**9) }}", "ljust() would make 1,000,000,000 characters"),
    ("{{ ('a\\n'*10**6)|indent(100) }}", "indent() would make"),
    ("{{ ('a'*10**6)|replace('a', 'b'*100) }}", "replace() would make 100,000,000 characters"),
    ("{{ (['a'*10**6]*10)|join('b'*10**6) }}", "join() would make 20,000,000 characters"),
    ("{{ ['a'*10**6]*20 }}", "its output passes 16 MiB"),
    ("{{ (['a'*10**6]*20)|upper }}", "the upper filter's input passes 16 MiB as text"),
    ("{{ '-'.join(['a'*10**6]*100) }}", "join() would make"),
    ("{{ ('a'*10**6).translate({97: 'b'*100}) }}", "translate() would make"),
    ("{{ ('a b '*10**6).split() }}", "split() would make 2,000,001 items"),
    ("{{ ('a'*10**7)|list }}", "the list filter would make 10,000,000 items"),
    ("{{ [1]|batch(10**9, 0)|list }}", "the batch filter would make 1,000,000,000 items"),
    ("{{ ([[1]*1000]*10000)|sum(start=[]) }}", "sum() of 10,000 lists would copy 100,000,000,000 items"),
    ("{{ {'a': 1}|tojson(10**6) }}", "tojson indent 1,000,000 is above 16"),
    ("{{ lipsum(10**6) }}", "lipsum() would make"),
    ("{% set s = 'a'*10**7 %}{% for i in range(10) %}{{ s }}{% endfor %}", "its output passes 16 MiB"),
    ("{% set s = 'a'*10**7 %}{% set c %}{% for i in range(10) %}{{ s }}{% endfor %}{% endset %}", "output passes"),
    ("{% macro m() %}{{ 'a'*10**7 }}{% endmacro %}{% for i in range(10) %}{{ m()|length }}{% endfor %}", "passes"),
    ("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "'~'"),
    ("{% set l = [] %}{% for i in range(200) %}{{ l.extend([0] * 10000) }}{% endfor %}", "extend() would make"),
]


@pytest.mark.parametrize("template, message", HUGE, ids=[t for t, _ in HUGE])
def test_what_would_pass_a_size_bound_is_refused_before_it_takes_the_memory(tmp_path, template, message):
    error, peak = _refused(tmp_path, "first line\n" + template)
    assert error.what.startswith("template stopped: ") and message in error.what
    assert error.where == "t.j2:2"
    assert peak < 64, f"took {peak:.0f} MiB"


LONG = [
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% set x = 'a'*1000 %}{% for i in x %}{% for j in x %}{% for k in x %}{% endfor %}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{% for i in range(100) %}{{ f(n - 1) if n else '' }}{% endfor %}{% endmacro %}{{ f(5) }}",
]


@pytest.mark.parametrize("template", LONG)
def test_a_template_running_past_its_time_is_stopped(tmp_path, monkeypatch, template):
    monkeypatch.setattr(files, "TEMPLATE_SECONDS", 0.3)
    start = time.monotonic()
    error, _ = _refused(tmp_path, template)
    assert time.monotonic() - start < 3
    assert error.what == "template stopped: it ran longer than 0.3 s" and error.where == "t.j2:1"
    assert error.hint.startswith("a template may run 0.3 s")


def test_each_template_has_its_own_time(tmp_path, monkeypatch):
    start = time.monotonic()
    _render(tmp_path, "{% for i in range(20000) %}{% for j in range(10) %}{% endfor %}{% endfor %}")
    alone = time.monotonic() - start
    monkeypatch.setattr(files, "TEMPLATE_SECONDS", 3 * alone)
    entries = "".join(f'[[templates]]\nsrc = "t.j2"\ndest = "out{n}"\n' for n in range(6))
    (tmp_path / "stack.toml").write_text('[stack]\nname = "s"\n' + entries)
    assert len(desired_files(load(tmp_path), NETWORK)) == 6  # together twice the time one may take


def test_a_template_file_past_the_size_bound_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "TEMPLATE_TEXT", 1000)
    error, _ = _refused(tmp_path, "x" * 1001)
    assert error.what == "template stopped: t.j2 is 1,001 bytes (at most 0.000953674 MiB)"


@pytest.mark.parametrize(
    "template, output",
    [
        ("{{ 'ok %s %d' % ('x', 2147483648) }}", "ok x 2147483648"),
        ("{{ '{}'.format(2147483648) }} {{ '%d'|format(2147483648) }}", "2147483648 2147483648"),
        ("{{ range(5)|join(', ') }} {{ [1, 2]|map('string')|join('-') }}", "0, 1, 2, 3, 4 1-2"),
        ("{{ 'a,b'.split(',') }} {{ {'a': 1}|tojson }} [{{ 'x'|center(5) }}]", "['a', 'b'] {\"a\": 1} [  x  ]"),
        (
            "{% for i in range(3) %}{{ loop.index }}/{{ loop.length }}{% if not loop.last %},{% endif %}{% endfor %}",
            "1/3,2/3,3/3",
        ),
        ("{% for x in [] %}x{% else %}empty{% endfor %}", "empty"),
        ("{% set c %}{{ 'ab' ~ 1 }}{% endset %}{{ c * 2 }} {{ 2**10 }} {{ [1] + [2] }}", "ab1ab1 1024 [1, 2]"),
        ("{% macro m(x) %}<{{ x }}>{% endmacro %}{{ m('a') }}{{ 'xy'|indent(2) }}", "<a>xy"),
    ],
)
def test_ordinary_templates_render_as_before(tmp_path, template, output):
    assert _render(tmp_path, template).decode() == output


def test_the_output_bound_counts_the_whole_output(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "TEMPLATE_TEXT", 100)
    assert _render(tmp_path, "{% for i in range(10) %}0123456789{% endfor %}") == b"0123456789" * 10
    error, _ = _refused(tmp_path, "{% for i in range(10) %}0123456789{% endfor %}!")
    assert error.what == "template stopped: its output passes 9.53674e-05 MiB"
