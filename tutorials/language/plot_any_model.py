"""
Any model, one line: a Hugging Face text classifier and a per-pixel uncertainty map
===================================================================================

:func:`bayesdrop.mc_predict` and :class:`bayesdrop.MCPredictor` take what real models take and
return: a tokenizer's dictionary of ``input_ids`` and ``attention_mask``, a Hugging Face
``ModelOutput``, a segmentation model's ``{"out": (N, C, H, W)}``. The noise those models use in
training (dropout inside fused attention kernels, stochastic depth) is sampled, and
:func:`bayesdrop.check_noise` confirms it against the model's own training-mode noise.

Two examples, each trained briefly on this CPU:

1. a small BERT sentence classifier on the sentence-polarity data (``rt-polarity``), scored
   by ``MCPredictor`` from a DataLoader of dictionary batches;
2. a small fully convolutional segmentation network on synthetic shapes, whose per-pixel
   mutual information is an uncertainty map.

Set ``BAYESDROP_SMOKE=1`` for a fast run and ``BAYESDROP_DATA`` to the folder holding
``rt-polarity/``. The claims this page makes are checked by ``assert`` statements below, in
smoke mode as in full mode.
"""
# sphinx_gallery_tags = ["rt-polarity", "synthetic"]

# %%
# A Hugging Face classifier from a small configuration
# ----------------------------------------------------
# No weights are downloaded: the model is built from a configuration with random weights and
# trained for a short while. A whitespace vocabulary stands in for a tokenizer; what matters is
# the batch format, a dictionary of tensors with a ``labels`` entry, as a tokenizer and a
# ``DataCollator`` produce.

import os
import time
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import transformers
from torch import nn

import bayesdrop
from bayesdrop.datasets import smoke_mode

start_time = time.perf_counter()
torch.manual_seed(0)
smoke = smoke_mode()
root = Path(os.environ.get("BAYESDROP_DATA", "../shared/data")) / "rt-polarity"


def read(name: str) -> list[str]:
    return (root / name).read_text(encoding="latin-1").splitlines()


pos, neg = read("rt-polarity.pos"), read("rt-polarity.neg")
sentences = pos + neg
labels = torch.tensor([1] * len(pos) + [0] * len(neg))
order = torch.randperm(len(sentences), generator=torch.Generator().manual_seed(0))
num_test = 400 if smoke else 1000
num_train = 4000 if smoke else len(sentences) - num_test
train_idx, test_idx = order[num_test : num_test + num_train], order[:num_test]

counts = Counter(w for i in train_idx.tolist() for w in sentences[i].split())
vocab = {w: i + 2 for i, (w, _) in enumerate(counts.most_common(8000))}  # 0 pad, 1 unknown
max_len = 32


def encode(i: int) -> dict[str, torch.Tensor]:
    ids = [vocab.get(w, 1) for w in sentences[i].split()][:max_len]
    pad = max_len - len(ids)
    return {
        "input_ids": torch.tensor(ids + [0] * pad),
        "attention_mask": torch.tensor([1] * len(ids) + [0] * pad),
        "labels": labels[i],
    }


train_data = [encode(i) for i in train_idx.tolist()]
test_data = [encode(i) for i in test_idx.tolist()]

config = transformers.BertConfig(
    vocab_size=len(vocab) + 2,
    hidden_size=32,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=max_len,
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
    classifier_dropout=0.3,
    num_labels=2,
)
bert = transformers.BertForSequenceClassification(config)
print("attention implementation:", bert.config._attn_implementation)

# %%
# Training: the model's own loss from the ``labels`` entry

loader = torch.utils.data.DataLoader(train_data, batch_size=32, shuffle=True)
optimizer = torch.optim.AdamW(bert.parameters(), lr=3e-3, weight_decay=0.01)
epochs = 2 if smoke else 4
bert.train()
for epoch in range(epochs):
    total = 0.0
    for batch in loader:
        optimizer.zero_grad()
        loss = bert(**batch).loss
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch["labels"])
    print(f"epoch {epoch + 1}/{epochs}: training loss {total / len(train_data):.3f}")
bert.eval()

# %%
# Which noise does sampling reach?
# --------------------------------
# With the SDPA attention kernel, Hugging Face passes the attention dropout rate to the kernel
# only while the attention module is in training mode. :func:`bayesdrop.sampling` switches
# those modules (and the ``nn.Dropout`` modules) and nothing else, and
# :func:`bayesdrop.check_noise` compares the spread of the logits with the spread under
# training mode (normalisation layers excluded).

test_loader = torch.utils.data.DataLoader(test_data, batch_size=100)
example = {k: v for k, v in next(iter(test_loader)).items() if k != "labels"}
kinds = Counter(type(m).__name__ for _, m in bayesdrop.nn.stochastic_modules(bert))
print("noise modules sampled:", dict(kinds))
check = bayesdrop.check_noise(bert, example, num_samples=32)
print(f"spread under sampling() / under training mode: {check.ratio:.2f}")
assert "BertSelfAttention" in kinds and not check.missed

# %%
# Monte-Carlo prediction over a DataLoader of dictionaries
# --------------------------------------------------------
# ``target_key="labels"`` takes the target out of each batch (the model gets the rest as
# keyword arguments) and keeps it in ``pred.target``; the logits are found in the
# ``SequenceClassifierOutput`` by the documented rule (its ``logits``).

predictor = bayesdrop.MCPredictor(
    bert, num_samples=30 if smoke else 100, seed=0, target_key="labels", progress=False
)
pred = predictor.predict(test_loader)
correct = pred.prediction == pred.target
accuracy = float(correct.float().mean())
mi_right = float(pred.mutual_information[correct].mean())
mi_wrong = float(pred.mutual_information[~correct].mean())
print(f"engine: {pred.engine} ({pred.engine_reason[:90]}...)")
print(f"test accuracy {accuracy:.3f} on {len(pred.target)} sentences")
print(f"mean mutual information: correct {mi_right:.4f}, wrong {mi_wrong:.4f} nats")
report = bayesdrop.CalibrationReport.from_predictions(pred, pred.target)
print(report.summary())

# %%
# The classifier has learned something (better than the 50% of guessing), and the sentences it
# gets wrong carry more epistemic uncertainty than those it gets right:

assert accuracy > 0.55
assert mi_wrong > mi_right

# %%
# A per-pixel uncertainty map
# ---------------------------
# A fully convolutional network in torchvision's output format, ``{"out": (N, C, H, W)}``, with
# spatial dropout before its classifier. ``class_dim=1`` says where the classes are (PyTorch's
# convention; Hugging Face's token classifiers put them last, ``class_dim=-1``): the result
# keeps the classes last, ``probs`` is ``(N, H, W, C)`` and every uncertainty is an
# ``(N, H, W)`` map.


def shapes(n: int, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy images holding a disc (class 1) and a square (class 2) on background 0."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    images, masks = torch.zeros(n, 1, size, size), torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        cy, cx = torch.randint(8, size - 8, (2,), generator=g).tolist()
        r = 5
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
        sy, sx = torch.randint(2, size - 10, (2,), generator=g).tolist()
        square = torch.zeros(size, size, dtype=torch.bool)
        square[sy : sy + 8, sx : sx + 8] = True
        masks[i][square], masks[i][disc] = 2, 1
        images[i, 0] = 0.8 * disc + 0.5 * square
    images += 0.35 * torch.randn(images.shape, generator=g)
    return images, masks


class SmallSegmenter(nn.Module):
    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3, padding=2, dilation=2),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3, padding=4, dilation=4),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Sequential(
            nn.Dropout2d(0.3),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.Dropout2d(0.3),
            nn.Conv2d(32, classes, 1),
        )

    def forward(self, x):
        return {"out": self.classifier(self.backbone(x))}


torch.manual_seed(0)
segmenter = SmallSegmenter()
x_train, m_train = shapes(256 if smoke else 1024, seed=1)
x_test, m_test = shapes(8, seed=2)
optimizer = torch.optim.Adam(segmenter.parameters(), lr=3e-3)
steps = 60 if smoke else 400
segmenter.train()
for step in range(steps):
    idx = torch.randint(0, len(x_train), (32,))
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(segmenter(x_train[idx])["out"], m_train[idx])
    loss.backward()
    optimizer.step()
    if (step + 1) % (steps // 4) == 0:
        print(f"step {step + 1}/{steps}: loss {loss.item():.3f}")
segmenter.eval()

seg = bayesdrop.mc_predict(segmenter, x_test, class_dim=1, num_samples=64, seed=0)
print(
    "probs", tuple(seg.probs.shape), "mutual information map", tuple(seg.mutual_information.shape)
)
print(f"engine: {seg.engine} ({seg.engine_reason})")
pixel_accuracy = float((seg.prediction == m_test).float().mean())
print(f"pixel accuracy {pixel_accuracy:.3f}")

# %%
# Where is the network unsure? Pixels on the edge of a shape (a pixel whose 3 x 3 neighbourhood
# holds another class) against the others:

labels_3x3 = nn.functional.max_pool2d(m_test[:, None].float(), 3, 1, 1)[:, 0]
labels_min = -nn.functional.max_pool2d(-m_test[:, None].float(), 3, 1, 1)[:, 0]
edge = labels_3x3 != labels_min
mi_edge = float(seg.mutual_information[edge].mean())
mi_inner = float(seg.mutual_information[~edge].mean())
print(f"mean mutual information: edge pixels {mi_edge:.4f}, other pixels {mi_inner:.4f} nats")
assert seg.engine == "cached"  # the backbone runs once, only the classifier per sample
assert mi_edge > 3 * mi_inner

fig, axes = plt.subplots(3, 4, figsize=(9, 7))
for row, i in enumerate(range(3)):
    panels = [
        (x_test[i, 0], "image", "gray"),
        (m_test[i], "truth", "viridis"),
        (seg.prediction[i], "MC prediction", "viridis"),
        (seg.mutual_information[i], "mutual information", "magma"),
    ]
    for ax, (img, title, cmap) in zip(axes[row], panels, strict=True):
        ax.imshow(img, cmap=cmap)
        ax.set_axis_off()
        if row == 0:
            ax.set_title(title)
fig.tight_layout()
plt.show()

# %%
# The uncertainty concentrates on the outlines, where a pixel's class is least determined by
# its surroundings: edge pixels carry on average more than three times the mutual information
# of the other pixels (printed above, and asserted). The background far from the shapes is the
# most confident region; inside the noisier square some pixels still vary between samples.

print(f"run time: {time.perf_counter() - start_time:.0f} s")
