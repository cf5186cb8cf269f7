#!/usr/bin/env bash
# The tests: the crate's (unit, integration against the real engine and bitcoind, multi-host), then the
# Python package's — built as a wheel with the regbox binary inside, installed into a virtual
# environment of its own (maturin, pytest and pytest-xdist come from the package index the first time), and run by
# pytest against the real engine. Arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")"

# tests/book.rs builds the book in docs/ with mdbook.
if ! command -v mdbook >/dev/null; then
    echo "test.sh: installing mdbook 0.5.4 (cargo install), which tests/book.rs builds the book with" >&2
    cargo install mdbook --locked --version 0.5.4
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"   # where cargo install puts it
fi

cargo test "$@"

venv=target/python
if [ ! -x "$venv/bin/maturin" ] || [ ! -x "$venv/bin/pytest" ] || [ ! -d "$venv/lib/python3"*/site-packages/xdist ]; then
    echo "test.sh: making the Python test environment in $venv (maturin, pytest, pytest-xdist)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "maturin>=1.5,<2" "pytest>=7" "pytest-xdist>=3"
fi
rm -rf target/wheels
(cd python && "../$venv/bin/maturin" build --quiet -o ../target/wheels)
"$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps target/wheels/regbox-*.whl
# The wheel's own binary, not one named by the environment.
env -u REGBOX_BIN "$venv/bin/pytest" -q python/tests examples/python
