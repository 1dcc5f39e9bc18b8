#!/usr/bin/env bash
# The module as the collection reconcile.fleet, assembled in a scratch folder from
# ansible/collection/ and ansible/library/reconcile.py (the only copy of the module):
#
#   ansible/collection.sh sanity [ansible-test options]   # ansible-test sanity, every test
#   ansible/collection.sh build DEST                      # reconcile-fleet-VERSION.tar.gz in DEST
#
# PYTHON: the Python whose ansible-core to use [default: .venv/bin/python, else python3].
#
# ansible-test bootstraps pip in its test venvs with a script from its own server; here a
# stand-in does it with ensurepip and the package index, so only PyPI is reached. Its venvs
# and cache live in the scratch folder's HOME, not yours.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
command="${1:?usage: collection.sh sanity|build ...}"
shift
python="${PYTHON:-$here/../.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"
bin="$(dirname "$python")"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/reconcile-collection.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
tree="$scratch/ansible_collections/reconcile/fleet"
mkdir -p "$tree/plugins/modules"
cp -r "$here/collection/." "$tree/"
cp "$here/library/reconcile.py" "$tree/plugins/modules/reconcile.py"

case "$command" in
build)
    dest="$(cd "${1:?usage: collection.sh build DEST}" && pwd)"
    (cd "$tree" && "$bin/ansible-galaxy" collection build --output-path "$dest" --force)
    ;;
sanity)
    pip="$("$python" -c 'import sys, types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version="%d.%d" % sys.version_info[:2]))["pip"])')"
    mkdir -p "$scratch/home/.ansible/test/cache"
    cat >"$scratch/home/.ansible/test/cache/get_pip_${pip//./_}.py" <<'PY'
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args]))
PY
    # ansible-test reads the collection's files from git.
    (cd "$tree" && git init -q && git add -A)
    version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    (cd "$tree" && HOME="$scratch/home" PATH="$bin:$PATH" "$bin/ansible-test" sanity --python "$version" "$@")
    ;;
*)
    echo "usage: collection.sh sanity|build ..." >&2
    exit 2
    ;;
esac
