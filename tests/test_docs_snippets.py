"""The Python snippets of the landing page and the user guide run as written, in order, and the
values their comments show are the values they produce.

A page's ``.. code-block:: python`` blocks run one after the other in one namespace, as a
reader pastes them into a fresh interpreter. An expression statement followed by a comment
that starts with a Python literal (``pred.probs.shape  # (16, 3)``, ``kl.item()  # 0.0: ...``)
is evaluated and compared with that literal; other comments are prose.
"""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import bayesdrop

DOCS = Path(__file__).resolve().parents[1] / "docs"
_BLOCK = re.compile(r"^\.\. code-block:: python\n((?:\n|[ ]{3}.*\n)+)", re.M)
_NO_VALUE = object()


def python_blocks(page: str, docs: Path = DOCS) -> list[str]:
    """The source of every ``.. code-block:: python`` of a page, dedented."""
    text = (docs / page).read_text()
    blocks = []
    for match in _BLOCK.finditer(text):
        lines = [line[3:] for line in match.group(1).splitlines()]
        blocks.append("\n".join(lines).strip("\n") + "\n")
    return blocks


def _shown_value(comment: str) -> Any:
    """The literal a comment starts with (up to a ':' that ends it), or ``_NO_VALUE``."""
    comment = comment.strip()
    cuts = [len(comment)] + [i for i, c in enumerate(comment) if c == ":"]
    for cut in cuts:
        try:
            return ast.literal_eval(comment[:cut].strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return _NO_VALUE


def _as_shown(value: Any, expected: Any) -> Any:
    """A tensor shown as a tuple is its shape (``pred.probs  # (32, 3)``), elementwise."""
    if isinstance(value, torch.Tensor) and isinstance(expected, tuple):
        return tuple(value.shape)
    if isinstance(value, tuple) and isinstance(expected, tuple) and len(value) == len(expected):
        return tuple(_as_shown(v, e) for v, e in zip(value, expected, strict=True))
    return value


def _comment_after(lines: list[str], node: ast.stmt) -> str | None:
    line = lines[node.end_lineno - 1]  # type: ignore[operator]
    rest = line[node.end_col_offset :]
    return rest.split("#", 1)[1] if "#" in rest else None


def run_page(page: str, docs: Path = DOCS, *, blocks: list[int] | None = None) -> dict[str, Any]:
    """Run a page's snippets (those numbered ``blocks``, from 0, when given); fail on a statement
    that raises or a shown value that differs."""
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for number, source in enumerate(python_blocks(page, docs)):
        if blocks is not None and number not in blocks:
            continue
        lines = source.splitlines()
        for node in ast.parse(source).body:
            where = f"{page}, block {number + 1}, line {node.lineno}: {lines[node.lineno - 1]}"
            comment = _comment_after(lines, node) if isinstance(node, ast.Expr) else None
            expected = _NO_VALUE if comment is None else _shown_value(comment)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a page may show a warning being raised
                if isinstance(node, ast.Expr):
                    code = compile(ast.Expression(node.value), where, "eval")
                    value = eval(code, namespace)
                else:
                    exec(compile(ast.Module([node], []), where, "exec"), namespace)
                    continue
            if expected is not _NO_VALUE:
                got = _as_shown(value, expected)
                assert got == expected, f"{where}\nshows {expected!r}, gives {got!r}"[:2000]
    return namespace


def test_shown_values_are_parsed_from_comments():
    assert _shown_value(" (16, 3), (16,)") == ((16, 3), (16,))
    assert _shown_value(" (False, False): BatchNorm stayed") == (False, False)
    assert _shown_value(" ('cached', 'auto: the model traces')") == (
        "cached",
        "auto: the model traces",
    )
    assert _shown_value(" nll + KL / num_data") is _NO_VALUE
    assert _as_shown((torch.zeros(4, 2), torch.zeros(4)), ((4, 2), (4,))) == ((4, 2), (4,))


def test_a_wrong_shown_value_fails(tmp_path):
    (tmp_path / "page.rst").write_text(".. code-block:: python\n\n   x = 1 + 1\n   x  # 3\n")
    with pytest.raises(AssertionError, match="shows 3, gives 2"):
        run_page("page.rst", tmp_path)


@pytest.mark.parametrize(
    "page",
    [
        "index.rst",
        "user_guide/own_model.rst",
        "user_guide/faq.rst",
        "user_guide/choosing_a_method.rst",
        "user_guide/troubleshooting.rst",
    ],
)
def test_page_snippets_run_as_written(page):
    torch.manual_seed(0)
    run_page(page)


def test_convert_to_mc_carries_no_kl_as_the_page_says():
    """own_model.rst: ``convert(to="mc")`` layers hold no weights, so the KL is zero; a wrapped
    layer carries its weights' KL."""
    ns = run_page("user_guide/own_model.rst")
    assert bayesdrop.kl_divergence(ns["mc_net"]).item() == 0.0
    assert bayesdrop.kl_divergence(ns["wrapped"]).item() != 0.0
    text = (DOCS / "user_guide/own_model.rst").read_text()
    assert "carry a KL term to a prior" not in text


def test_troubleshooting_quotes_the_errors_as_raised():
    """The messages the troubleshooting page quotes are the ones mc_predict raises (the zero
    spread triggered on probabilities that are exactly equal: two classes, zero logits)."""

    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop, self.head = nn.Dropout(0.5), nn.Linear(4, 2)
            nn.init.zeros_(self.head.weight), nn.init.zeros_(self.head.bias)

        def forward(self, inputs):
            _ = self.drop(inputs)
            return self.head(inputs)

    with pytest.raises(ValueError) as info:
        bayesdrop.mc_predict(Unused().eval(), torch.randn(3, 4), num_samples=8, engine="loop")
    quoted = (
        "Expected `model` to be a model whose sampled outputs vary, but got the same output in "
        "every sample (no noise reaches the output)"
    )
    assert str(info.value).startswith(quoted)
    page = " ".join((DOCS / "user_guide/troubleshooting.rst").read_text().split())
    assert quoted in page
    no_noise = nn.Sequential(nn.Linear(4, 2)).eval()
    with pytest.raises(ValueError) as info:
        bayesdrop.mc_predict(no_noise, torch.randn(3, 4), num_samples=8)
    quoted = "Expected `model` to be a model with at least one dropout with a non-zero rate"
    assert str(info.value).startswith(quoted + ", but got a model with none.")
    assert quoted in page


def _offline_hub(monkeypatch) -> None:
    """``from_pretrained`` of the hub names the library-models page uses, answered offline: a
    word-level tokenizer over a small vocabulary (trained here with ``tokenizers``) and models of
    the same classes built from small configurations with random weights."""
    import tokenizers
    import transformers
    from tokenizers import models, pre_tokenizers, trainers

    words = tokenizers.Tokenizer(models.WordLevel(unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    text = ["a gripping, funny film", "flat, and far too long", "The film was", "I did not expect"]
    special = ["[PAD]", "[UNK]", "</s>"]
    words.train_from_iterator(text, trainers.WordLevelTrainer(special_tokens=special))

    def tokenizer(name, **kwargs):
        return transformers.PreTrainedTokenizerFast(
            tokenizer_object=words, unk_token="[UNK]", pad_token="[PAD]", eos_token="</s>"
        )

    def classifier(name, num_labels=2, **kwargs):
        config = transformers.BertConfig(
            vocab_size=words.get_vocab_size(), hidden_size=32, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=64, num_labels=num_labels,
        )  # fmt: skip
        return transformers.BertForSequenceClassification(config).eval()

    def causal(name, **kwargs):
        config = transformers.GPT2Config(
            vocab_size=words.get_vocab_size(), n_positions=64, n_embd=32, n_layer=1, n_head=2
        )
        return transformers.GPT2LMHeadModel(config).eval()

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", tokenizer)
    monkeypatch.setattr(
        transformers.AutoModelForSequenceClassification, "from_pretrained", classifier
    )
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", causal)


def test_library_models_hub_snippets_run_with_offline_stand_ins(monkeypatch):
    """library_models.rst: the text classifier, its DataLoader and the generation snippet define
    everything they use; run as written with the hub calls answered offline."""
    page = "user_guide/library_models.rst"
    hub = [i for i, block in enumerate(python_blocks(page)) if "from_pretrained" in block]
    assert len(hub) == 2, "the BERT and the GPT-2 snippet"
    after_bert = hub[0] + 1  # the DataLoader snippet continues the BERT one
    _offline_hub(monkeypatch)
    ns = run_page(page, blocks=[hub[0], after_bert, hub[1]])
    assert tuple(ns["pred"].probs.shape) == (2, 2)  # the DataLoader's prediction of 2 sentences
    assert ns["pred"].target.tolist() == [1, 0]
    assert ns["scored"].mutual_information.shape == ns["out"].mutual_information.shape
