"""Real architectures from torchvision, timm, Hugging Face transformers and torch, built from
small configurations with random weights (nothing is downloaded).

Each builder returns ``(model, inputs, options)``: the model in eval mode, one small batch of
what the model takes (a tensor or a mapping of keyword tensors), and the ``mc_predict`` options
the model needs (``class_dim``, ``batch_dim``). torchvision imports only because
``tests/conftest.py`` stubs its operator registrations first.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn


def _torchvision():
    return pytest.importorskip("torchvision.models")


def fit_batchnorm(model: nn.Module, shape: tuple[int, ...], batches: int = 3) -> nn.Module:
    """Running statistics from a few random batches (cumulative averages), then eval mode.

    With the initial statistics (mean 0, variance 1) the activations of a randomly initialised
    deep network shrink layer by layer until the noise no longer reaches the output."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(*shape))
    return model.eval()


def vgg11():
    torch.manual_seed(0)
    model = fit_batchnorm(_torchvision().vgg11(weights=None, num_classes=10), (8, 3, 32, 32))
    return model, torch.randn(2, 3, 32, 32), {}


def mobilenet_v3_small():
    torch.manual_seed(0)
    model = fit_batchnorm(
        _torchvision().mobilenet_v3_small(weights=None, num_classes=10), (8, 3, 32, 32)
    )
    return model, torch.randn(2, 3, 32, 32), {}


def efficientnet_b0():
    # stochastic depth 0.2 (torchvision's default) in the blocks and dropout 0.2 in the head
    torch.manual_seed(0)
    model = fit_batchnorm(
        _torchvision().efficientnet_b0(weights=None, num_classes=10), (8, 3, 32, 32)
    )
    return model, torch.randn(2, 3, 32, 32), {}


def efficientnet_b0_stochastic_depth_only():
    torch.manual_seed(0)
    model = fit_batchnorm(
        _torchvision().efficientnet_b0(weights=None, num_classes=10, dropout=0.0), (8, 3, 32, 32)
    )
    return model, torch.randn(2, 3, 32, 32), {}


def resnet18_dropout_head():
    torch.manual_seed(0)
    model = _torchvision().resnet18(weights=None, num_classes=10)
    model.fc = nn.Sequential(nn.Dropout(0.5), nn.Linear(512, 10))
    return fit_batchnorm(model, (8, 3, 32, 32)), torch.randn(2, 3, 32, 32), {}


def deeplabv3_mobilenet():
    # per-pixel classes (N, C, H, W) in {"out": ...}; dropout 0.5 in the ASPP projection
    torch.manual_seed(0)
    seg = pytest.importorskip("torchvision.models.segmentation")
    model = seg.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=4)
    return fit_batchnorm(model, (4, 3, 32, 32)), torch.randn(2, 3, 32, 32), {"class_dim": 1}


def small_vit(**rates) -> nn.Module:
    """timm's vit_tiny at 32 x 32 pixels, patches of 8, 10 classes, random weights; ``rates``
    (drop_rate, attn_drop_rate, drop_path_rate, depth, ...) go to ``timm.create_model``."""
    timm = pytest.importorskip("timm")
    return timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        img_size=32,
        patch_size=8,
        num_classes=10,
        **rates,
    )


def timm_vit_tiny():
    torch.manual_seed(0)
    model = small_vit(drop_rate=0.1, attn_drop_rate=0.1, drop_path_rate=0.1)
    return model.eval(), torch.randn(2, 3, 32, 32), {}


def timm_convnext_atto():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    # layer scale 1 instead of 1e-6, so that the residual branches (and their stochastic depth)
    # reach the output of a randomly initialised network
    model = timm.create_model(
        "convnext_atto", pretrained=False, num_classes=10, drop_path_rate=0.2, ls_init_value=1.0
    )
    return model.eval(), torch.randn(2, 3, 32, 32), {}


def _tokens(vocab: int = 100, n: int = 2, t: int = 8) -> dict:
    ids = torch.randint(0, vocab, (n, t))
    mask = torch.ones(n, t, dtype=torch.long)
    mask[1, 6:] = 0  # padding in the second sequence
    return {"input_ids": ids, "attention_mask": mask}


def _hf(name: str, only_attention: bool = False):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    # initializer_range 0.3 instead of 0.02: logits of a useful size, so that the noise shows
    # in the probabilities of a randomly initialised model
    small = dict(vocab_size=100, num_labels=3, initializer_range=0.3)
    if name == "bert":
        config = transformers.BertConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
            max_position_embeddings=64,
            **small,
        )
        cls = transformers.BertForSequenceClassification
        hidden, attention = (
            ("hidden_dropout_prob", "classifier_dropout"),
            "attention_probs_dropout_prob",
        )
    elif name == "distilbert":
        config = transformers.DistilBertConfig(
            dim=32, n_layers=2, n_heads=2, hidden_dim=37, max_position_embeddings=64, **small
        )
        cls = transformers.DistilBertForSequenceClassification
        hidden, attention = ("dropout", "seq_classif_dropout"), "attention_dropout"
    else:
        config = transformers.GPT2Config(
            n_embd=32, n_layer=2, n_head=2, n_positions=64, pad_token_id=0, **small
        )
        cls = transformers.GPT2ForSequenceClassification
        hidden, attention = ("resid_pdrop", "embd_pdrop"), "attn_pdrop"
    setattr(config, attention, 0.2)
    for key in hidden:
        setattr(config, key, 0.0 if only_attention else 0.1)
    model = cls(config).eval()
    return model, _tokens(), {}


def bert():
    return _hf("bert")


def distilbert():
    return _hf("distilbert")


def gpt2():
    return _hf("gpt2")


def bert_attention_dropout_only():
    return _hf("bert", only_attention=True)


class _Encoder(nn.Module):
    """torch's TransformerEncoder over embedded tokens, per-token classes."""

    def __init__(self, batch_first: bool) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 16)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.2, batch_first=batch_first)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.out = nn.Linear(16, 3)

    def forward(self, x):
        return self.out(self.encoder(self.embed(x)))


class _Recurrent(nn.Module):
    """torch's LSTM (dropout between its layers) and a dropout before a per-step head."""

    def __init__(self, batch_first: bool) -> None:
        super().__init__()
        self.lstm = nn.LSTM(6, 16, num_layers=2, dropout=0.3, batch_first=batch_first)
        self.drop = nn.Dropout(0.3)
        self.out = nn.Linear(16, 3)

    def forward(self, x):
        return self.out(self.drop(self.lstm(x)[0]))


def transformer_encoder(batch_first: bool = True):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 6) if batch_first else torch.randn(5, 2, 6)
    opts = {"class_dim": -1} if batch_first else {"class_dim": -1, "batch_dim": 1}
    return _Encoder(batch_first).eval(), x, opts


def lstm(batch_first: bool = True):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 6) if batch_first else torch.randn(5, 2, 6)
    opts = {"class_dim": -1} if batch_first else {"class_dim": -1, "batch_dim": 1}
    return _Recurrent(batch_first).eval(), x, opts


ZOO = {
    "vgg11": vgg11,
    "mobilenet_v3_small": mobilenet_v3_small,
    "efficientnet_b0": efficientnet_b0,
    "resnet18_dropout_head": resnet18_dropout_head,
    "deeplabv3_mobilenet": deeplabv3_mobilenet,
    "timm_vit_tiny": timm_vit_tiny,
    "timm_convnext_atto": timm_convnext_atto,
    "bert": bert,
    "distilbert": distilbert,
    "gpt2": gpt2,
    "transformer_encoder_batch_first": lambda: transformer_encoder(True),
    "transformer_encoder_sequence_first": lambda: transformer_encoder(False),
    "lstm_batch_first": lambda: lstm(True),
    "lstm_sequence_first": lambda: lstm(False),
}
