#!/usr/bin/env bash
# Install-and-smoke (issue 24): bayesdrop as a pip user gets it.
#
# 1. build the sdist and, from it, the wheel (python -m build), check that both hold LICENSE and
#    the wheel py.typed, and run `twine check --strict`;
# 2. install the wheel into a fresh venv in a temp dir with only the core, at the lower bounds
#    pyproject.toml declares (torch==2.13.0 first, so pip takes the local CPU wheel); there run
#    the README's Python snippet, `bayesdrop report` (Markdown and JSON; HTML must name the plot
#    extra), `bayesdrop --version`, and check that `import bayesdrop` loads no optional package;
# 3. each extra in turn: install it, use its feature (plot, pyro, recal, fast), then `all`.
# Any failure (a file missing from a distribution, a dependency missing from the core or an
# extra, a wrong message) stops the script with a non-zero status.
#
# Usage: .ci/install_smoke.sh   (BUILD_PYTHON: a Python with `build` and `twine`, default the
# dev venv's; PYTHON: the interpreter of the fresh venv, default python3; TORCH: default
# torch==2.13.0). Takes about two to three minutes, most of it installing torch and the extras.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
BUILD_PYTHON=${BUILD_PYTHON:-$root/.venv/bin/python}
PYTHON=${PYTHON:-python3}
TORCH=${TORCH:-torch==2.13.0}
export OMP_NUM_THREADS=1 MPLBACKEND=Agg PIP_DISABLE_PIP_VERSION_CHECK=1
work=$(mktemp -d "${TMPDIR:-/tmp}/bayesdrop-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$SECONDS
step() { echo "==> [install smoke, ${1}, $((SECONDS - start)) s] ${*:2}"; }
fail() { echo "==> install smoke FAILED: $*" >&2; exit 1; }
quiet() {  # run a command, show its output only when it fails
    "$@" > "$work/log" 2>&1 || { grep -v "^WARNING: Location" "$work/log" | tail -40 >&2; fail "$*"; }
}

step 1/3 "building the sdist and the wheel"
quiet "$BUILD_PYTHON" -m build --outdir "$work/dist" "$root"
sdist=$(ls "$work"/dist/bayesdrop-*.tar.gz)
wheel=$(ls "$work"/dist/bayesdrop-*.whl)
version=$(basename "$wheel" | cut -d- -f2)
tar tzf "$sdist" > "$work/sdist.txt"
for needed in LICENSE README.pypi.md pyproject.toml bayesdrop/py.typed; do
    grep -qx "bayesdrop-$version/$needed" "$work/sdist.txt" || fail "$needed is not in the sdist"
done
"$BUILD_PYTHON" - "$wheel" <<'EOF' || fail "the wheel lacks a file"
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
for needed in (f"{info}/licenses/LICENSE", "bayesdrop/py.typed", "bayesdrop/cli.py"):
    assert needed in names, f"{needed} is not in the wheel"
assert not any(n.startswith(("tests/", "docs/")) for n in names), "tests or docs in the wheel"
EOF
quiet "$BUILD_PYTHON" -m twine check --strict "$sdist" "$wheel"
echo "    $(basename "$sdist"), $(basename "$wheel"): twine check --strict passed"

step 2/3 "a fresh venv with only the core, at its lower bounds"
"$PYTHON" -m venv "$work/venv"
py=$work/venv/bin/python
quiet "$py" -m pip install "$TORCH"
# the core's lower bounds as constraints: `numpy>=1.24` -> `numpy==1.24.*` (torch stays)
"$py" - "$root/pyproject.toml" > "$work/lower.txt" <<'EOF'
import re, sys, tomllib
for req in tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]:
    name, low = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", req).groups()
    print(f"{name}=={low}.*")
EOF
quiet "$py" -m pip install -c "$work/lower.txt" "$wheel"
quiet "$py" -m pip check
"$py" -m pip list 2>/dev/null | grep -iE "^(torch|numpy|scikit-learn|scipy|tqdm) " | sed 's/^/    /'
mkdir "$work/run" && cd "$work/run"  # not the repository: bayesdrop comes from the venv
"$py" - <<'EOF' || fail "import bayesdrop loaded an optional package or the wrong bayesdrop"
import sys, bayesdrop
assert "site-packages" in bayesdrop.__file__, bayesdrop.__file__
optional = {"matplotlib", "pyro", "netcal", "numba", "scipy", "sklearn"}
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in optional)
assert not loaded, loaded
EOF
"$py" - "$root/README.md" > snippet.py <<'EOF'
import re, sys
print(re.search(r"```python\n(.*?)```", open(sys.argv[1]).read(), re.S).group(1))
EOF
quiet "$py" snippet.py
echo "    README snippet: ok"
"$py" - <<'EOF'
import numpy as np
gen = np.random.default_rng(0)
probs = gen.dirichlet(np.ones(4), size=500)
np.savez("preds.npz", probs=probs, target=np.array([gen.choice(4, p=p) for p in probs]))
EOF
bin=$work/venv/bin
quiet "$bin/bayesdrop" report preds.npz --out report.md --json report.json
test -s report.md && test -s report.json || fail "bayesdrop report wrote no report"
status=0
"$bin/bayesdrop" report preds.npz --out report.html > /dev/null 2> html.err || status=$?
[ "$status" = 1 ] && grep -q 'bayesdrop\[plot\]' html.err \
    || fail "an HTML report without matplotlib should name the plot extra: $(cat html.err)"
[ "$("$bin/bayesdrop" --version)" = "bayesdrop $version" ] || fail "bayesdrop --version"
"$py" -c "import bayesdrop.pyro" 2> pyro.err && fail "bayesdrop.pyro imported without pyro"
grep -q 'MissingDependencyError.*bayesdrop\[pyro\]' pyro.err || fail "$(cat pyro.err)"
echo "    bayesdrop report (md, json), --version, the missing-extra errors: ok"

step 3/3 "each extra"
extra() { step 3/3 "extra [$1]"; quiet "$py" -m pip install "$wheel[$1]"; quiet "$py" -c "$2"; }
extra plot "
import subprocess, torch, bayesdrop
from bayesdrop.calibration import ReliabilityDisplay
ReliabilityDisplay.from_predictions(torch.rand(50, 3).softmax(-1), torch.randint(0, 3, (50,))).plot()
subprocess.run(['$bin/bayesdrop', 'report', 'preds.npz', '--out', 'report.html'], check=True)
assert open('report.html').read().count('<img') >= 1
"
extra pyro "
import torch
from torch import nn
import bayesdrop
from bayesdrop.pyro import DropoutModel
net = nn.Sequential(bayesdrop.ConcreteDropout(nn.Linear(4, 2)))
DropoutModel(net, num_data=10, likelihood='categorical')
"
extra recal "
import torch
from bayesdrop.calibration import IsotonicCalibration
probs = torch.rand(200, 3).softmax(-1)
assert IsotonicCalibration().fit_transform(probs, torch.randint(0, 3, (200,))).shape == (200, 3)
"
extra fast "
import numba, torch
from bayesdrop.calibration import expected_calibration_error
expected_calibration_error(torch.rand(100, 3).softmax(-1), torch.randint(0, 3, (100,)))
"
extra all "import bayesdrop.pyro, matplotlib, netcal, numba"
quiet "$py" -m pip check
step done "the wheel installs and works with the core and with each extra"
