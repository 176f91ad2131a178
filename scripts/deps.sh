#!/usr/bin/env bash
# deps.sh: installs the Debian packages gcpin's build, tests, examples and
# benchmarks need, and only those that are missing. Idempotent; when everything
# is present it only asks dpkg and returns (well under a second).
set -euo pipefail

# w3m: a real binary linked against libgc.so.1, run on gcpin by make test;
# cmake: the find_package(gcpin) check of the installed CMake package.
packages=(libgc-dev liburing-dev pkg-config w3m cmake)

missing=()
for pkg in "${packages[@]}"; do
    # "Status: install ok installed" is the only state that counts as present.
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed'; then
        missing+=("$pkg")
    fi
done
# python3 may come from elsewhere (pyenv, a venv): any python3 on PATH will do.
if ! command -v python3 >/dev/null 2>&1; then
    missing+=(python3)
fi
# A C compiler for the tests and examples.
if ! command -v cc >/dev/null 2>&1; then
    missing+=(gcc libc6-dev)
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "deps.sh: installing ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
