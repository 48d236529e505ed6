#!/usr/bin/env bash
# Install requirements.lock into two fresh venvs and require identical `pip freeze` output: the lock alone decides
# the environment (every package pinned, every file hash-checked, nothing resolved at install time).
# Usage: scripts/check_lock.sh [PYTHON]   (default python3.11). Slow (two full installs): CI runs it, `make test` does not.
# Extra pip options (e.g. --extra-index-url https://download.pytorch.org/whl/cpu for the CPU torch) come from the
# usual PIP_* environment variables.
set -euo pipefail

python=${1:-python3.11}
root=$(cd "$(dirname "$0")/.." && pwd)
lock="$root/requirements.lock"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

[ -f "$lock" ] || { echo "check_lock: $lock is missing (run make lock)" >&2; exit 2; }
if grep -qiE '^nvidia-' "$lock"; then
  echo "check_lock: $lock names CUDA packages (nvidia-*): torch must be the CPU build" >&2
  exit 1
fi

for n in 1 2; do
  "$python" -m venv "$work/venv$n"
  start=$(date +%s)
  "$work/venv$n/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r "$lock"
  "$work/venv$n/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$root"
  echo "check_lock: install $n took $(( $(date +%s) - start )) s"
  # the editable line names the checkout; everything else must match byte for byte
  "$work/venv$n/bin/python" -m pip freeze --disable-pip-version-check --exclude-editable | LC_ALL=C sort > "$work/freeze$n.txt"
  "$work/venv$n/bin/python" -m pip check --disable-pip-version-check
done

if ! diff -u "$work/freeze1.txt" "$work/freeze2.txt"; then
  echo "check_lock: two installs from requirements.lock differ (above)" >&2
  exit 1
fi
# and nothing outside the lock came in (pip, setuptools and the editable project aside)
"$work/venv1/bin/python" - "$lock" "$work/freeze1.txt" <<'PY'
import re
import sys

def canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()

pins = {}
for line in open(sys.argv[1]):
    m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^]]*\])?==(\S+)", line)
    if m:
        pins[canon(m.group(1))] = m.group(3)
bad = []
for line in open(sys.argv[2]):
    name, _, version = line.strip().partition("==")
    if canon(name) in {"pip", "setuptools", "wheel"} and canon(name) not in pins:
        continue
    if pins.get(canon(name)) != version:
        bad.append(f"{name}=={version} (lock: {pins.get(canon(name), 'absent')})")
if bad:
    sys.exit("check_lock: installed but not as locked: " + ", ".join(bad))
PY
echo "check_lock: identical pip freeze ($(wc -l < "$work/freeze1.txt") packages)"
