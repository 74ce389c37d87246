"""The order of the tutorial gallery: a reading path, not the alphabet.

sphinx-gallery imports this class by name (``within_subsection_order``) and sorts each
gallery folder (a group: classification, language, ...) with it. Tutorials named in
:data:`PATH` come first, in that order; any other file follows, sorted by name (so a new
``plot_NN_*.py`` lands after the path without an edit).
"""

from __future__ import annotations

import os

# Inside each group of the gallery (a folder of tutorials/): first steps, then the recipes for
# pretrained models, then uncertainty in use, then training the dropout, then the specialised
# models.
PATH = (
    "plot_00_own_model_digits.py",
    "plot_torchvision_dropout_head.py",
    "plot_timm_drop_path.py",
    "plot_hf_text_classifier.py",
    "plot_mc_predict_ood.py",
    "plot_calibration_report.py",
    "plot_concrete_dropout_regression.py",
    "plot_uci_regression.py",
    "plot_variational_lstm_ptb.py",
    "plot_early_late_dropout.py",
    "plot_rdrop.py",
)


class TutorialOrder:
    """Sort key: position in :data:`PATH`, then file name."""

    def __init__(self, src_dir: str | os.PathLike[str]) -> None:
        self.src_dir = src_dir

    def __repr__(self) -> str:  # sphinx-gallery hashes the configuration through repr
        return f"<{type(self).__name__} {len(PATH)} fixed>"

    def __call__(self, filename: str | os.PathLike[str]) -> tuple[int, str]:
        name = os.path.basename(os.fspath(filename))
        return (PATH.index(name) if name in PATH else len(PATH), name)
