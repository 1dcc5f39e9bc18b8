"""Variable substitution: the shell forms BuildKit and compose document."""

import pytest

from reconciler.interpolation import SubstitutionError, substitute

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
        # a '$' that starts no name stays literal
        ("a$", {}, "a$", []),
        ("a$-b", {}, "a$-b", []),
        ("a $ b", {}, "a $ b", []),
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
    ],
)
def test_substitute_buildkit_escape_is_backslash(text, variables, value, undefined):
    result = substitute(text, variables, escape="\\")
    assert (result.value, result.undefined) == (value, undefined)


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
