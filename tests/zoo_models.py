"""Real architectures from torchvision, timm, Hugging Face transformers and torch, built from
small configurations with random weights (nothing is downloaded).

Each builder returns ``(model, inputs, options)``: the model in eval mode, one small batch of
what the model takes (a tensor or a mapping of keyword tensors), and the ``mc_predict`` options
the model needs (``class_dim``, ``batch_dim``). torchvision imports only because
``tests/conftest.py`` stubs its operator registrations first.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn import functional as F


def _torchvision():
    return pytest.importorskip("torchvision.models")


def lecun_linear(model: nn.Module, head: nn.Linear, gain: float = 4.0) -> nn.Module:
    """Every linear layer's weights drawn with standard deviation 1 / sqrt(fan_in), the head's
    ``gain`` times that.

    The transformers' own initialisations (truncated normal with std 0.02, a zero head) give
    a random network logits so small that its probabilities are uniform whatever the noise."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                scale = gain if m is head else 1.0
                m.weight.normal_(0.0, scale / m.in_features**0.5)
    return model


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
    """torchvision's VGG-11 (features, avgpool, flatten, a classifier with two dropouts) with a
    head sized for 32x32 inputs: the pool to 1x1, so the first classifier layer reads 512
    features (7x7x512 = 25,088 on 224x224 images made this case 37 s of the suite)."""
    torch.manual_seed(0)
    model = _torchvision().vgg11(weights=None, num_classes=10)
    model.avgpool = nn.AdaptiveAvgPool2d(1)
    model.classifier[0] = nn.Linear(512, 4096)
    return fit_batchnorm(model, (8, 3, 32, 32)), torch.randn(2, 3, 32, 32), {}


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


# ---------------------------------------------------------------------------------------------
# The wider zoo of issue 20: every kind of training-mode noise the real architectures have.
# Each entry of NOISE says which noise the model has (what the oracle test compares).
# ---------------------------------------------------------------------------------------------


def _eos_tokens(eos: int, vocab: int = 100, n: int = 2, t: int = 8) -> dict:
    """Tokens with exactly one end-of-sequence token per row (T5 and BART pool on it), the
    second sequence padded after its end."""
    batch = _tokens(vocab, n, t)
    ids = batch["input_ids"]
    ids[ids == eos] = eos + 3
    ids[0, -1], ids[1, 5] = eos, eos
    return batch


def _hf_model(config_name: str, model_name: str, inputs=None, **config):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config.setdefault("num_labels", 3)
    model = getattr(transformers, model_name)(getattr(transformers, config_name)(**config))
    return model.eval(), _tokens() if inputs is None else inputs, {}


_SMALL_TEXT = dict(
    vocab_size=100,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=37,
    max_position_embeddings=64,
    initializer_range=0.3,
)


def roberta():
    return _hf_model(
        "RobertaConfig",
        "RobertaForSequenceClassification",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.2,
        pad_token_id=1,
        **_SMALL_TEXT,
    )


def electra():
    return _hf_model(
        "ElectraConfig",
        "ElectraForSequenceClassification",
        embedding_size=16,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.2,
        **_SMALL_TEXT,
    )


def albert():
    # one layer shared by both passes of the encoder
    return _hf_model(
        "AlbertConfig",
        "AlbertForSequenceClassification",
        embedding_size=16,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.2,
        classifier_dropout_prob=0.1,
        **_SMALL_TEXT,
    )


def bert_token_classification():
    # per-token classes (N, T, C)
    model, batch, _ = _hf_model(
        "BertConfig",
        "BertForTokenClassification",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.2,
        **_SMALL_TEXT,
    )
    return model, batch, {"class_dim": -1}


def opt():
    # LayerDrop 0.3 (one draw per forward pass, shared by the batch) besides dropout
    return _hf_model(
        "OPTConfig",
        "OPTForSequenceClassification",
        vocab_size=100,
        hidden_size=32,
        word_embed_proj_dim=32,
        ffn_dim=37,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=64,
        dropout=0.1,
        attention_dropout=0.2,
        layerdrop=0.3,
        init_std=0.3,
        pad_token_id=1,
    )


def gpt_neo():
    # a global and a local (window 4) attention layer
    return _hf_model(
        "GPTNeoConfig",
        "GPTNeoForSequenceClassification",
        vocab_size=100,
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        attention_types=[[["global", "local"], 1]],
        window_size=4,
        max_position_embeddings=64,
        embed_dropout=0.1,
        attention_dropout=0.2,
        resid_dropout=0.1,
        initializer_range=0.3,
        pad_token_id=0,
    )


def llama():
    # attention dropout is Llama's only noise (F.scaled_dot_product_attention's dropout_p,
    # 0.0 unless the attention module is in training mode)
    return _hf_model(
        "LlamaConfig",
        "LlamaForSequenceClassification",
        vocab_size=100,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        attention_dropout=0.3,
        initializer_range=0.3,
        pad_token_id=0,
    )


def t5():
    # T5's attention also reads self.training for gradient checkpointing
    return _hf_model(
        "T5Config",
        "T5ForSequenceClassification",
        _eos_tokens(1),
        vocab_size=100,
        d_model=32,
        d_kv=16,
        d_ff=37,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        dropout_rate=0.1,
        classifier_dropout=0.1,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )


def bart():
    # encoder and decoder LayerDrop (per forward pass) besides dropout
    return _hf_model(
        "BartConfig",
        "BartForSequenceClassification",
        _eos_tokens(2),
        vocab_size=100,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=37,
        decoder_ffn_dim=37,
        max_position_embeddings=64,
        dropout=0.1,
        attention_dropout=0.1,
        activation_dropout=0.1,
        classifier_dropout=0.1,
        encoder_layerdrop=0.3,
        decoder_layerdrop=0.3,
        init_std=0.3,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
    )


def _speech(model_name: str, config_name: str, **rates):
    # 0.1 s of 16 kHz audio, two conv layers (stride 10: 159 frames), no SpecAugment (its masks
    # come from numpy's global generator, not torch's)
    torch.manual_seed(0)
    model, _, opts = _hf_model(
        config_name,
        model_name,
        None,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(16, 32),
        conv_stride=(5, 2),
        conv_kernel=(10, 3),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        classifier_proj_size=16,
        apply_spec_augment=False,
        initializer_range=0.3,
        **rates,
    )
    return model, {"input_values": torch.randn(2, 1600)}, opts


def wav2vec2_layerdrop():
    return _speech(
        "Wav2Vec2ForSequenceClassification",
        "Wav2Vec2Config",
        hidden_dropout=0.1,
        activation_dropout=0.1,
        attention_dropout=0.1,
        feat_proj_dropout=0.1,
        layerdrop=0.3,
    )


def hubert_layerdrop_only():
    # LayerDrop is the only noise: one draw per forward pass for the whole batch
    return _speech(
        "HubertForSequenceClassification",
        "HubertConfig",
        hidden_dropout=0.0,
        activation_dropout=0.0,
        attention_dropout=0.0,
        feat_proj_dropout=0.0,
        final_dropout=0.0,
        layerdrop=0.5,
    )


def hf_vit():
    model, _, opts = _hf_model(
        "ViTConfig",
        "ViTForImageClassification",
        None,
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.2,
        initializer_range=0.3,
    )
    return model, {"pixel_values": torch.randn(2, 3, 32, 32)}, opts


# timm -----------------------------------------------------------------------------------------


def _timm(name: str, shape=(2, 3, 32, 32), batchnorm: bool = True, **kwargs):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10, **kwargs)
    if batchnorm:
        model = fit_batchnorm(model, (8, *shape[1:]))
    return model.eval(), torch.randn(*shape), {}


def timm_resnet18_dropblock():
    # DropBlock in the last two stages (its mask normalised over the whole batch), stochastic
    # depth and the functional dropout of forward_head; 64 x 64 so that layer4's map is 2 x 2
    return _timm(
        "resnet18",
        (2, 3, 64, 64),
        drop_rate=0.2,
        drop_path_rate=0.1,
        drop_block_rate=0.2,
    )


def timm_efficientnet_b0():
    return _timm("efficientnet_b0", drop_rate=0.2, drop_path_rate=0.2)


def timm_mobilenetv3_drop_rate_only():
    # the only noise: F.dropout(..., training=self.training) in forward_head
    return _timm("mobilenetv3_small_100", drop_rate=0.3)


def timm_regnetx_002():
    return _timm("regnetx_002", drop_rate=0.2, drop_path_rate=0.1)


def timm_densenet121():
    # functional dropout in every dense layer's forward, and in the head
    return _timm("densenet121", drop_rate=0.1)


def timm_mixer():
    model, x, opts = _timm(
        "mixer_s16_224", batchnorm=False, img_size=32, drop_rate=0.1, drop_path_rate=0.2
    )
    return lecun_linear(model, model.head), x, opts


def timm_deit_tiny():
    return _timm(
        "deit_tiny_patch16_224",
        batchnorm=False,
        img_size=32,
        patch_size=8,
        depth=3,
        drop_rate=0.1,
        attn_drop_rate=0.1,
        drop_path_rate=0.1,
    )


def timm_ghostnet():
    # F.dropout in forward_head
    return _timm("ghostnet_100", drop_rate=0.2)


def timm_levit():
    # attention with BatchNorm in its projections; stochastic depth
    return _timm("levit_128s", (2, 3, 64, 64), img_size=64, drop_rate=0.1, drop_path_rate=0.2)


# torchvision ----------------------------------------------------------------------------------


def tv_densenet():
    # torchvision's DenseNet with a small block configuration: F.dropout in each dense layer's
    # forward (training=self.training) is its only noise
    torch.manual_seed(0)
    model = _torchvision().DenseNet(
        growth_rate=8,
        block_config=(2, 2, 2),
        num_init_features=16,
        bn_size=2,
        drop_rate=0.2,
        num_classes=10,
    )
    return fit_batchnorm(model, (8, 3, 32, 32)), torch.randn(2, 3, 32, 32), {}


def tv_googlenet():
    torch.manual_seed(0)
    model = _torchvision().googlenet(
        weights=None, aux_logits=False, init_weights=True, num_classes=10, dropout=0.3
    )
    return fit_batchnorm(model, (8, 3, 32, 32)), torch.randn(2, 3, 32, 32), {}


def tv_swin():
    # shifted-window attention: its dropout is F.dropout(..., training=self.training) inside a
    # function the attention module calls; stochastic depth "row" and dropout besides
    torch.manual_seed(0)
    from torchvision.models.swin_transformer import SwinTransformer

    model = SwinTransformer(
        patch_size=[4, 4],
        embed_dim=16,
        depths=[2, 2],
        num_heads=[2, 2],
        window_size=[4, 4],
        dropout=0.1,
        attention_dropout=0.2,
        stochastic_depth_prob=0.2,
        num_classes=10,
    )
    return lecun_linear(model, model.head).eval(), torch.randn(2, 3, 32, 32), {}


def tv_convnext():
    # stochastic depth "row" is the only noise; layer scale 1 so that the branches matter
    torch.manual_seed(0)
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    model = ConvNeXt(
        [CNBlockConfig(16, 32, 2), CNBlockConfig(32, None, 2)],
        stochastic_depth_prob=0.3,
        layer_scale=1.0,
        num_classes=10,
    )
    return lecun_linear(model, model.classifier[-1]).eval(), torch.randn(2, 3, 32, 32), {}


def tv_vit():
    # nn.MultiheadAttention's dropout and nn.Dropout in the encoder blocks
    torch.manual_seed(0)
    from torchvision.models.vision_transformer import VisionTransformer

    model = VisionTransformer(
        image_size=32,
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        mlp_dim=37,
        dropout=0.1,
        attention_dropout=0.2,
        num_classes=10,
    )
    return lecun_linear(model, model.heads.head).eval(), torch.randn(2, 3, 32, 32), {}


def tv_maxvit():
    # MBConv, block and grid attention with stochastic depth "row" and dropout
    torch.manual_seed(0)
    from torchvision.models.maxvit import MaxVit

    model = MaxVit(
        input_size=(32, 32),
        stem_channels=8,
        partition_size=2,
        block_channels=[16, 32],
        block_layers=[1, 1],
        head_dim=8,
        stochastic_depth_prob=0.2,
        mlp_dropout=0.1,
        attention_dropout=0.1,
        num_classes=10,
    )
    lecun_linear(model, model.classifier[-1])
    return fit_batchnorm(model, (8, 3, 32, 32)), torch.randn(2, 3, 32, 32), {}


def tv_squeezenet():
    torch.manual_seed(0)
    model = _torchvision().squeezenet1_1(weights=None, num_classes=10, dropout=0.5)
    return model.eval(), torch.randn(2, 3, 32, 32), {}


def tv_mnasnet():
    torch.manual_seed(0)
    model = _torchvision().mnasnet0_5(weights=None, num_classes=10, dropout=0.3)
    return fit_batchnorm(model, (8, 3, 32, 32)), torch.randn(2, 3, 32, 32), {}


class _Residual(nn.Module):
    def __init__(self, width: int, p: float, mode: str) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.GELU(), nn.Conv2d(width, width, 3, padding=1)
        )
        self.depth = pytest.importorskip("torchvision.ops").StochasticDepth(p, mode)

    def forward(self, x):
        return x + self.depth(self.branch(x))


def stochastic_depth(mode: str):
    """A small residual network whose only noise is torchvision's StochasticDepth: "batch"
    (one draw per forward pass for the whole batch) or "row" (one per example)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        _Residual(8, 0.5, mode),
        _Residual(8, 0.5, mode),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )
    with torch.no_grad():
        model[-1].weight.mul_(4.0)
    return model.eval(), torch.randn(3, 3, 16, 16), {}


# plain torch ----------------------------------------------------------------------------------


class _Seq2Seq(nn.Module):
    """torch's nn.Transformer (encoder-decoder) with per-target-token classes."""

    def __init__(self) -> None:
        super().__init__()
        self.src, self.tgt = nn.Linear(6, 16), nn.Linear(6, 16)
        self.transformer = nn.Transformer(
            16,
            2,
            num_encoder_layers=2,
            num_decoder_layers=2,
            dim_feedforward=32,
            dropout=0.2,
            batch_first=True,
        )
        self.out = nn.Linear(16, 3)

    def forward(self, src, tgt):
        mask = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
        return self.out(self.transformer(self.src(src), self.tgt(tgt), tgt_mask=mask))


def nn_transformer():
    torch.manual_seed(0)
    return _Seq2Seq().eval(), (torch.randn(2, 5, 6), torch.randn(2, 4, 6)), {"class_dim": -1}


class _MaskedAttention(nn.Module):
    """nn.MultiheadAttention with a key padding mask (an argument with a default); the first
    position's output is classified (what it attends to depends on the mask)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 16)
        self.attn = nn.MultiheadAttention(16, 2, dropout=0.3, batch_first=True)
        self.out = nn.Linear(16, 3)

    def forward(self, x, key_padding_mask=None):
        h = self.embed(x)
        a, _ = self.attn(h, h, h, key_padding_mask=key_padding_mask)
        return self.out(8 * a[:, 0])


def _masked_inputs():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 6)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[0, 2:] = True  # 2 and 4 tokens kept: the predictions depend on the mask
    mask[1, 4:] = True
    return x, mask


def mha_mask_positional():
    model = _MaskedAttention()
    return model.eval(), _masked_inputs(), {}


def mha_mask_keyword():
    model = _MaskedAttention()
    x, mask = _masked_inputs()
    return model.eval(), {"x": x, "key_padding_mask": mask}, {}


class _HelperDropout(nn.Module):
    """Functional dropout in a helper method that forward calls (not in forward itself)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 32), nn.Linear(32, 3)

    def _features(self, x):
        return F.dropout(torch.relu(self.fc1(x)), p=0.4, training=self.training)

    def forward(self, x):
        return self.fc2(self._features(x))


def helper_functional_dropout():
    torch.manual_seed(0)
    return _HelperDropout().eval(), torch.randn(3, 6), {}


def rrelu():
    # randomised leaky ReLU, the only noise: each negative slope drawn from U(0, 0.8) in
    # training mode (their mean, 0.4, in eval)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(6, 32),
        nn.RReLU(0.0, 0.8),
        nn.Linear(32, 32),
        nn.RReLU(0.0, 0.8),
        nn.Linear(32, 3),
    )
    with torch.no_grad():
        for layer in model[::2]:
            layer.weight.mul_(3.0)
    return model.eval(), torch.randn(3, 6), {}


def torchscript():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.4), nn.Linear(32, 3))
    with warnings.catch_warnings():
        # torch 2.10 and later: "`torch.jit.script` is deprecated"; scripted models still exist
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(model)
    return scripted.eval(), torch.randn(3, 6), {}


# name: (builder, library, the noise it has)
_ENTRIES = {
    "vgg11": (vgg11, "torchvision", "nn.Dropout (classifier)"),
    "mobilenet_v3_small": (mobilenet_v3_small, "torchvision", "nn.Dropout(inplace=True) head"),
    "efficientnet_b0": (efficientnet_b0, "torchvision", "StochasticDepth row, nn.Dropout"),
    "resnet18_dropout_head": (resnet18_dropout_head, "torchvision", "nn.Dropout head"),
    "deeplabv3_mobilenet": (deeplabv3_mobilenet, "torchvision", "nn.Dropout (ASPP), per pixel"),
    "tv_densenet": (tv_densenet, "torchvision", "F.dropout in forward of each dense layer"),
    "tv_googlenet": (tv_googlenet, "torchvision", "nn.Dropout head"),
    "tv_swin": (tv_swin, "torchvision", "shifted-window attention F.dropout, SD row, Dropout"),
    "tv_convnext": (tv_convnext, "torchvision", "StochasticDepth row only"),
    "tv_vit": (tv_vit, "torchvision", "nn.MultiheadAttention dropout, nn.Dropout"),
    "tv_maxvit": (tv_maxvit, "torchvision", "StochasticDepth row, attention and MLP dropout"),
    "tv_squeezenet": (tv_squeezenet, "torchvision", "nn.Dropout head"),
    "tv_mnasnet": (tv_mnasnet, "torchvision", "nn.Dropout(inplace=True) head"),
    "stochastic_depth_batch": (
        lambda: stochastic_depth("batch"),
        "torchvision",
        "StochasticDepth(mode='batch') only (per pass)",
    ),
    "stochastic_depth_row": (
        lambda: stochastic_depth("row"),
        "torchvision",
        "StochasticDepth(mode='row') only",
    ),
    "timm_vit_tiny": (timm_vit_tiny, "timm", "Dropout, fused attention dropout, DropPath"),
    "timm_convnext_atto": (timm_convnext_atto, "timm", "DropPath"),
    "timm_resnet18_dropblock": (
        timm_resnet18_dropblock,
        "timm",
        "DropBlock2d (batch-normalised mask), DropPath, F.dropout in forward_head",
    ),
    "timm_efficientnet_b0": (timm_efficientnet_b0, "timm", "DropPath, F.dropout in forward_head"),
    "timm_mobilenetv3_drop_rate_only": (
        timm_mobilenetv3_drop_rate_only,
        "timm",
        "F.dropout in forward_head only",
    ),
    "timm_regnetx_002": (timm_regnetx_002, "timm", "DropPath, F.dropout in forward_head"),
    "timm_densenet121": (timm_densenet121, "timm", "F.dropout in every dense layer, Dropout"),
    "timm_mixer": (timm_mixer, "timm", "DropPath, Dropout"),
    "timm_deit_tiny": (timm_deit_tiny, "timm", "Dropout, fused attention dropout, DropPath"),
    "timm_ghostnet": (timm_ghostnet, "timm", "F.dropout in forward_head"),
    "timm_levit": (timm_levit, "timm", "DropPath, Dropout (head)"),
    "bert": (bert, "transformers", "Dropout, SDPA attention dropout"),
    "distilbert": (distilbert, "transformers", "Dropout, SDPA attention dropout"),
    "gpt2": (gpt2, "transformers", "Dropout, SDPA attention dropout"),
    "roberta": (roberta, "transformers", "Dropout, SDPA attention dropout"),
    "electra": (electra, "transformers", "Dropout, SDPA attention dropout"),
    "albert": (albert, "transformers", "Dropout, attention dropout (shared layer)"),
    "bert_token_classification": (
        bert_token_classification,
        "transformers",
        "Dropout, SDPA attention dropout, per token",
    ),
    "opt": (opt, "transformers", "LayerDrop (per pass), Dropout, attention dropout"),
    "gpt_neo": (gpt_neo, "transformers", "Dropout, attention dropout (global + local)"),
    "llama": (llama, "transformers", "attention dropout only"),
    "t5": (t5, "transformers", "Dropout; attention reads self.training for checkpointing"),
    "bart": (bart, "transformers", "encoder/decoder LayerDrop (per pass), Dropout"),
    "wav2vec2_layerdrop": (
        wav2vec2_layerdrop,
        "transformers",
        "LayerDrop (per pass), Dropout, attention dropout",
    ),
    "hubert_layerdrop_only": (hubert_layerdrop_only, "transformers", "LayerDrop only (per pass)"),
    "hf_vit": (hf_vit, "transformers", "Dropout, SDPA attention dropout"),
    "transformer_encoder_batch_first": (
        lambda: transformer_encoder(True),
        "torch",
        "TransformerEncoderLayer dropout",
    ),
    "transformer_encoder_sequence_first": (
        lambda: transformer_encoder(False),
        "torch",
        "TransformerEncoderLayer dropout, batch_dim=1",
    ),
    "lstm_batch_first": (lambda: lstm(True), "torch", "LSTM inter-layer dropout, Dropout"),
    "lstm_sequence_first": (lambda: lstm(False), "torch", "LSTM dropout, Dropout, batch_dim=1"),
    "nn_transformer": (nn_transformer, "torch", "nn.Transformer dropout, inputs (src, tgt)"),
    "mha_mask_positional": (
        mha_mask_positional,
        "torch",
        "MultiheadAttention dropout, (x, key_padding_mask) positional",
    ),
    "mha_mask_keyword": (
        mha_mask_keyword,
        "torch",
        "MultiheadAttention dropout, key_padding_mask by keyword",
    ),
    "helper_functional_dropout": (
        helper_functional_dropout,
        "torch",
        "F.dropout in a helper method called by forward",
    ),
    "rrelu": (rrelu, "torch", "nn.RReLU only"),
    "torchscript": (torchscript, "torch", "nn.Dropout inside torch.jit.script"),
}

ZOO = {name: entry[0] for name, entry in _ENTRIES.items()}
LIBRARY = {name: entry[1] for name, entry in _ENTRIES.items()}
NOISE = {name: entry[2] for name, entry in _ENTRIES.items()}
