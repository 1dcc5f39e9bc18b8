"""Variable substitution: the shell forms BuildKit and compose document."""

import pytest

from reconciler.interpolation import (
    MAX_VALUE,
    ExpansionLimitError,
    LoneDollarError,
    SubstitutionError,
    shown,
    substitute,
)

BOTH = pytest.mark.parametrize("escape", ["\\", "$"], ids=["buildkit", "compose"])


@BOTH
@pytest.mark.parametrize(
    ("text", "variables", "value", "undefined"),
    [
        ("redis:7", {}, "redis:7", []),
        ("$V", {"V": "1"}, "1", []),
        ("${V}", {"V": "1"}, "1", []),
        ("redis:${V}-alpine", {"V": "7"}, "redis:7-alpine", []),
        ("$V-alpine", {"V": "7"}, "7-alpine", []),
        ("$V_x", {"V": "7"}, "", ["V_x"]),
        ("${V}_x", {"V": "7"}, "7_x", []),
        ("$V", {}, "", ["V"]),
        ("${A}:${B}", {}, ":", ["A", "B"]),
        ("${V}", {"V": ""}, "", []),
        # default: ':-' also replaces an empty value, '-' only an unset one
        ("${V:-d}", {}, "d", []),
        ("${V:-d}", {"V": ""}, "d", []),
        ("${V:-d}", {"V": "x"}, "x", []),
        ("${V-d}", {}, "d", []),
        ("${V-d}", {"V": ""}, "", []),
        ("${V-d}", {"V": "x"}, "x", []),
        ("${V:-}", {}, "", []),
        # alternative: ':+' needs a non-empty value, '+' only a set one
        ("${V:+x}", {"V": "1"}, "x", []),
        ("${V:+x}", {"V": ""}, "", []),
        ("${V:+x}", {}, "", []),
        ("${V+x}", {"V": ""}, "x", []),
        ("${V+x}", {}, "", []),
        # '?' with a value: the value
        ("${V:?must be set}", {"V": "1"}, "1", []),
        ("${V?must be set}", {"V": ""}, "", []),
        # nested words, and undefined names reported only when the word is used
        ("${V:-${W}}", {"W": "w"}, "w", []),
        ("${V:-${W}}", {}, "", ["W"]),
        ("${V:-$W}", {"V": "v"}, "v", []),
        ("${V:-pre-${W:-deep}-post}", {}, "pre-deep-post", []),
        ("${V:+$W}", {}, "", []),
        ("${V:+$W}", {"V": "1"}, "", ["W"]),
        ("${V:+$W}", {"V": "1", "W": "w"}, "w", []),
    ],
)
def test_substitute_expands_shell_forms(escape, text, variables, value, undefined):
    result = substitute(text, variables, escape=escape)
    assert result.value == value
    assert result.undefined == undefined


@pytest.mark.parametrize(
    ("text", "variables", "value", "undefined"),
    [
        ("\\$V", {"V": "1"}, "$V", []),
        ("\\${V}", {}, "${V}", []),
        ("a\\bc", {}, "abc", []),
        ("\\\\$V", {"V": "1"}, "\\1", []),
        ("$$V", {"V": "1"}, "$1", []),
        # a '$' that starts no name stays literal, as in a shell
        ("a$", {}, "a$", []),
        ("a$-b", {}, "a$-b", []),
        ("a $ b", {}, "a $ b", []),
    ],
)
def test_substitute_buildkit_escape_is_backslash(text, variables, value, undefined):
    result = substitute(text, variables, escape="\\")
    assert (result.value, result.undefined) == (value, undefined)


@pytest.mark.parametrize("text", ["a$", "a$-b", "a $ b", "pa$1word", "${V:-a$}"])
def test_compose_refuses_a_dollar_that_starts_no_variable_as_compose_does(text):
    with pytest.raises(LoneDollarError, match=r"a '\$' that starts no variable"):
        substitute(text, {"V": "set"}, escape="$")


@pytest.mark.parametrize(
    ("text", "variables", "value", "undefined"),
    [
        ("$$V", {"V": "1"}, "$V", []),
        ("$${V}", {}, "${V}", []),
        ("$$$V", {"V": "1"}, "$1", []),
        ("\\$V", {"V": "1"}, "\\1", []),
        ("${V:-$$}", {}, "$", []),
    ],
)
def test_substitute_compose_escape_is_double_dollar(text, variables, value, undefined):
    result = substitute(text, variables, escape="$")
    assert (result.value, result.undefined) == (value, undefined)


@BOTH
@pytest.mark.parametrize(
    ("text", "variables", "message"),
    [
        ("${V:?must be set}", {}, "V: must be set"),
        ("${V:?must be set}", {"V": ""}, "V: must be set"),
        ("${V?must be set}", {}, "V: must be set"),
        ("${V:?}", {}, "V: parameter not set"),
        ("${V?}", {}, "V: parameter not set"),
    ],
)
def test_substitute_question_mark_raises_with_message(escape, text, variables, message):
    with pytest.raises(SubstitutionError) as info:
        substitute(text, variables, escape=escape)
    assert str(info.value) == message


@BOTH
@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("${", "bad substitution"),
        ("${}", "bad substitution"),
        ("${1}", "bad substitution"),
        ("${-x}", "bad substitution"),
        ("${V", "bad substitution"),
        ("${V/a/b}", "unsupported operator"),
        ("${V#x}", "unsupported operator"),
        ("${V:-x", "missing '}'"),
        ("redis:${V:-${W}", "missing '}'"),
    ],
)
def test_substitute_rejects_malformed_braces(escape, text, match):
    with pytest.raises(SubstitutionError, match=match):
        substitute(text, {}, escape=escape)


def test_substitution_error_is_a_value_error():
    assert issubclass(SubstitutionError, ValueError)


@pytest.mark.parametrize(
    ("text", "variables", "value"),
    [
        ('"alpine:3"', {}, "alpine:3"),
        ("'alpine:3'", {}, "alpine:3"),
        ('"$V"', {"V": "1"}, "1"),
        ("'$V'", {"V": "1"}, "$V"),
        ('a"b c"d', {}, "ab cd"),
        ('"it\'s"', {}, "it's"),
        ("'say \"hi\"'", {}, 'say "hi"'),
        ('"a\\"b"', {}, 'a"b'),
        ('"a\\$V"', {"V": "1"}, "a$V"),
        ('"a\\nb"', {}, "a\\nb"),
        ("${V:-'x}y'}", {}, "x}y"),
        ('${V:-"$W"}', {"W": "w"}, "w"),
        ("\\'a", {}, "'a"),
        ("a\\", {}, "a"),
    ],
)
def test_substitute_removes_quotes_like_buildkit(text, variables, value):
    assert substitute(text, variables, escape="\\", quotes=True).value == value


@pytest.mark.parametrize("text", ["'abc", '"abc', "a'b", '${V:-"}'])
def test_substitute_unclosed_quote_is_an_error(text):
    with pytest.raises(SubstitutionError, match="missing"):
        substitute(text, {}, escape="\\", quotes=True)


def test_substitute_keeps_quotes_unless_asked():
    assert substitute('"a"', {}, escape="\\").value == '"a"'
    assert substitute("'$V'", {"V": "1"}, escape="$").value == "'1'"


@pytest.mark.parametrize(
    ("text", "variables", "unset"),
    [
        ("$V", {}, ["V"]),
        ("${V:-d}", {}, ["V"]),
        ("${V:-$W}", {}, ["V", "W"]),
        ("${V:-$W}", {"V": "v"}, []),
        ("${V+$W}", {"V": ""}, ["W"]),
        ("${V+$W}", {}, ["V"]),
        ("$V", {"V": ""}, []),
    ],
)
def test_substitute_unset_lists_every_name_the_value_depends_on(text, variables, unset):
    assert substitute(text, variables, escape="\\").unset == unset


def test_substitute_caps_the_length_of_a_value():
    big = {"A": "x" * 40_000}
    assert len(substitute("$A", big, escape="\\").value) == 40_000
    with pytest.raises(ExpansionLimitError, match=f"longer than {MAX_VALUE} characters"):
        substitute("$A$A", big, escape="\\")
    with pytest.raises(ExpansionLimitError):
        substitute("${B:-$A$A}", big, escape="\\")
    with pytest.raises(ExpansionLimitError, match="longer than 10 characters"):
        substitute("x" * 11, {}, escape="$", limit=10)


def test_substitute_caps_nesting_instead_of_overflowing_the_stack():
    deep = "${A:-" * 5000 + "x" + "}" * 5000
    with pytest.raises(ExpansionLimitError, match="nested deeper"):
        substitute(deep, {}, escape="\\")
    assert substitute("${A:-" * 20 + "x" + "}" * 20, {}, escape="\\").value == "x"


def test_substitute_limit_error_is_a_substitution_error():
    assert issubclass(ExpansionLimitError, SubstitutionError)


def test_error_messages_cut_long_text_and_escape_control_characters():
    with pytest.raises(SubstitutionError) as info:
        substitute("\x1b[31m" + "a" * 5000 + "${", {}, escape="\\")
    message = str(info.value)
    assert len(message) < 300
    assert "\x1b" not in message and "\\x1b" in message
    assert "(5007 characters)" in message


def test_shown_quotes_short_text_whole():
    assert shown("a\nb") == "'a\\nb'"
    assert shown("x" * 300) == repr("x" * 200) + "... (300 characters)"


def test_required_message_long_or_unprintable_is_shown_quoted():
    with pytest.raises(SubstitutionError) as info:
        substitute("${V:?" + "m" * 500 + "}", {}, escape="\\")
    assert str(info.value).startswith("V: 'mmm") and len(str(info.value)) < 300
