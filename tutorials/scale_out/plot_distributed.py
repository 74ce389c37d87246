"""
Scaling out: MC-dropout prediction with torchrun
================================================

:class:`bayesdrop.MCPredictor` runs inside PyTorch's own distributed engine. Launched with
``torchrun``, each process predicts the shard its ``DistributedSampler`` gives it, draws its masks
from its own random stream, and the shards come back together in data-set order on every process
(``gather="all"``), on process 0 only (``"rank0"``), or stay where they are (``"none"``, for
a calibration report whose sums are reduced over the processes). Nothing is home-made:
the processes talk through ``torch.distributed`` (gloo on CPU, NCCL on GPUs).

This page writes a small script, runs it with ``torchrun --standalone --nproc-per-node 2`` on
the CPU (gloo), and checks what comes back against a prediction in this process. The data are
scikit-learn's digits, so nothing needs downloading. The claims are checked by ``assert``
statements, in smoke mode as in full mode.
"""

# %%
# A model to predict with
# -----------------------
# A small dropout network, trained for a few seconds here and saved for the job to load.

import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn

import bayesdrop

start_time = time.perf_counter()
torch.manual_seed(0)
digits = load_digits()
x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
y = torch.tensor(digits.target)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
steps = 300
# sphinx_gallery_start_ignore
# The tests' short run (BAYESDROP_SMOKE=1).
from bayesdrop.datasets import smoke_mode

smoke = smoke_mode()
if smoke:
    steps = 100
# sphinx_gallery_end_ignore
for _ in range(steps):
    idx = torch.randint(0, len(x), (128,))
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
    loss.backward()
    optimizer.step()
print(f"training loss {loss.item():.3f}")
workdir = Path(tempfile.mkdtemp())
torch.save(model.state_dict(), workdir / "model.pt")

# %%
# The script every process runs
# -----------------------------
# It is an ordinary prediction script; the three distributed lines are the process group, the
# ``DistributedSampler`` and nothing else: ``MCPredictor.predict`` notices the job.

script = textwrap.dedent(
    """
    import sys
    import torch
    import torch.distributed as dist
    from sklearn.datasets import load_digits
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler

    import bayesdrop

    dist.init_process_group("gloo")  # torchrun sets rank, world size and the address
    torch.set_num_threads(1)
    digits = load_digits()
    data = TensorDataset(
        torch.tensor(digits.data, dtype=torch.float32) / 16.0, torch.tensor(digits.target)
    )
    loader = DataLoader(data, batch_size=200, sampler=DistributedSampler(data, shuffle=True))
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))
    model.load_state_dict(torch.load(sys.argv[1]))
    predictor = bayesdrop.MCPredictor(model.eval(), num_samples=100, seed=0, progress=False)
    local = predictor.predict(loader, gather="none")  # this process's rows
    pred = predictor.predict(loader)  # every row, in data-set order, on every process
    # the calibration report of the shards: only sums and 3 numbers per row cross processes
    report = bayesdrop.CalibrationReport.from_sharded_predictions(local, local.target)
    rows = [None] * dist.get_world_size()
    dist.all_gather_object(rows, len(local.probs))  # every process's row count
    if dist.get_rank() == 0:  # one process prints and saves
        print(f"rows per process: {rows}, gathered: {len(pred.probs)}")
        result = {"probs": pred.probs, "target": pred.target, "rows": rows}
        torch.save({**result, "report": report.to_dict()}, sys.argv[2])
    dist.destroy_process_group()
    """
)
(workdir / "predict.py").write_text(script)
print(script)

# %%
# Running it with torchrun
# ------------------------
# ``python -m torch.distributed.run`` is ``torchrun``; ``--standalone`` starts the rendezvous on
# this machine.

command = [
    sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
    str(workdir / "predict.py"), str(workdir / "model.pt"), str(workdir / "out.pt"),
]  # fmt: skip
print("$ torchrun --standalone --nproc-per-node 2 predict.py model.pt out.pt")
job = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
print(job.stdout.strip())
assert job.returncode == 0, job.stderr[-2000:]
gathered = torch.load(workdir / "out.pt")

# %%
# What came back
# --------------
# Each process predicted half of the 1,797 digits, and the gathered result holds every digit
# once, in data-set order (its targets are the data set's labels, row for row). It agrees with
# a prediction made here in one process, within Monte-Carlo error: the two used different masks.

local_rows = gathered["rows"]
single = bayesdrop.mc_predict(model.eval(), x, num_samples=1000, seed=1)
difference = float((gathered["probs"] - single.probs).abs().max())
agreement = float((gathered["probs"].argmax(-1) == single.probs.argmax(-1)).float().mean())
print(f"largest difference of a mean probability (100 vs 1000 samples): {difference:.3f}")
print(f"same predicted class: {agreement:.1%} of the digits")
assert sum(local_rows) == len(y) and max(local_rows) - min(local_rows) <= 1, local_rows
assert torch.equal(gathered["target"], y)
assert difference < 0.15 and agreement > 0.98, (difference, agreement)

# %%
# The calibration report of the shards
# ------------------------------------
# Each process called :meth:`bayesdrop.CalibrationReport.from_sharded_predictions` on its own
# rows: the metrics are sums reduced over the processes, and only three numbers per digit
# (confidence, correct or not, uncertainty score) were exchanged, not the ten probabilities.
# It matches the report of the gathered probabilities computed here, up to the order of
# float32 sums.

sharded = gathered["report"]
here = bayesdrop.CalibrationReport.from_predictions(gathered["probs"], gathered["target"])
for key in ("accuracy", "ece", "brier", "nll"):
    ours, theirs = sharded["metrics"][key], getattr(here.metrics, key)
    print(f"{key:>8}: sharded {ours:.6f}, gathered {theirs:.6f}")
print(f"misclassification AUROC: sharded {sharded['misclassification']['auroc']:.6f}, "
      f"gathered {here.misclassification.auroc:.6f}")  # fmt: skip
assert sharded["metrics"]["num_data"] == len(y)
for key in ("accuracy", "ece", "mce", "brier", "nll"):
    assert abs(sharded["metrics"][key] - getattr(here.metrics, key)) < 1e-5, key
assert abs(sharded["misclassification"]["auroc"] - here.misclassification.auroc) < 1e-5
assert abs(sharded["rejection"]["aurc"] - here.rejection.aurc) < 1e-5

print(f"run time: {time.perf_counter() - start_time:.0f} s")
# sphinx_gallery_tags = ["digits (scikit-learn)"]
