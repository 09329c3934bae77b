# The interpreter every shell launcher runs, in one place. Sourced after setting `repo` (the
# repository root) and `launcher` (the launcher's name); sets `py` and says on stdout which
# interpreter runs and why: $PYTHON when set, else the repository's .venv (make setup, or
# python -m venv .venv), else python3.
if [ -n "${PYTHON:-}" ]; then
  py="$PYTHON" py_why="\$PYTHON"
elif [ -x "$repo/.venv/bin/python" ]; then
  py="$repo/.venv/bin/python" py_why="the repository's .venv"
else
  py="$(command -v python3 || echo python3)" py_why="no .venv in $repo and no \$PYTHON"
fi
echo "$launcher: interpreter $py ($py_why)"
