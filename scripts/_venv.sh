# shellcheck shell=bash
# Sourced by scripts/test and scripts/demo (after they cd to the repo root):
# makes sure .venv exists on Python >= 3.11 and holds bankflow[dev,postgres], editable.

bf_python_ok() { # $1: interpreter; true if it runs and is Python >= 3.11
  "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

bf_find_python() {
  local candidate
  for candidate in python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && bf_python_ok "$candidate"; then
      echo "$candidate"
      return 0
    fi
  done
  echo "error: Python >= 3.11 is required (tried python3.12, python3.11, python3)" >&2
  return 1
}

bf_ensure_venv() {
  if [ -e .venv ] && ! bf_python_ok .venv/bin/python; then
    echo "==> .venv is broken or older than Python 3.11: recreating it"
    rm -rf .venv
  fi
  if [ ! -e .venv ]; then
    local python
    python=$(bf_find_python)
    echo "==> creating virtualenv .venv ($("$python" --version 2>&1))"
    "$python" -m venv .venv
  fi
  echo "==> installing bankflow[dev,postgres] into .venv"
  if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,postgres]'; then
    echo "error: 'pip install -e .[dev,postgres]' failed (see pip's output above)" >&2
    exit 1
  fi
}
