"""umT5-XXL text encoder (through ``transformers``), as Wan2.1 uses it.

Prompts are cleaned (ftfy when installed, HTML entities, whitespace), tokenised with padding
and truncation to ``text_len`` (512) tokens including ``</s>``, encoded with the attention mask,
and trimmed to their true length; the DiT pads them back with zeros.

Weights load from a Hugging Face ``UMT5EncoderModel`` folder (diffusers' ``text_encoder/``) or
from Wan's ``models_t5_umt5-xxl-enc-bf16.pth`` with its key names mapped:

    token_embedding                  -> shared (= encoder.embed_tokens)
    blocks.N.norm1 / norm2           -> encoder.block.N.layer.{0,1}.layer_norm
    blocks.N.attn.{q,k,v,o}          -> encoder.block.N.layer.0.SelfAttention.{q,k,v,o}
    blocks.N.pos_embedding.embedding -> encoder.block.N.layer.0.SelfAttention.relative_attention_bias
    blocks.N.ffn.gate.0 / fc1 / fc2  -> encoder.block.N.layer.1.DenseReluDense.wi_0 / wi_1 / wo
    norm                             -> encoder.final_layer_norm
"""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path

import torch

from worldcast.models.checkpoint import CheckpointError, StateDict, load_into, read_state_dict, rename_by_rules

log = logging.getLogger(__name__)

_WAN_T5_RULES = [
    (r"^token_embedding\.", "shared."),
    (r"^norm\.", "encoder.final_layer_norm."),
    (r"^blocks\.(\d+)\.norm1\.", r"encoder.block.\1.layer.0.layer_norm."),
    (r"^blocks\.(\d+)\.attn\.([qkvo])\.", r"encoder.block.\1.layer.0.SelfAttention.\2."),
    (r"^blocks\.(\d+)\.pos_embedding\.embedding\.", r"encoder.block.\1.layer.0.SelfAttention.relative_attention_bias."),
    (r"^blocks\.(\d+)\.norm2\.", r"encoder.block.\1.layer.1.layer_norm."),
    (r"^blocks\.(\d+)\.ffn\.gate\.0\.", r"encoder.block.\1.layer.1.DenseReluDense.wi_0."),
    (r"^blocks\.(\d+)\.ffn\.fc1\.", r"encoder.block.\1.layer.1.DenseReluDense.wi_1."),
    (r"^blocks\.(\d+)\.ffn\.fc2\.", r"encoder.block.\1.layer.1.DenseReluDense.wo."),
]


def wan_t5_to_hf(key: str) -> str:
    return rename_by_rules(key, _WAN_T5_RULES)


def clean_prompt(text: str) -> str:
    """Wan's 'whitespace' cleaning: ftfy (if installed), HTML unescape twice, collapse whitespace."""
    try:
        import ftfy
        text = ftfy.fix_text(text)
    except ImportError:
        pass
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


def umt5_config_from_wan_state(state: StateDict):
    """An encoder config read off the shapes of a Wan T5 state dict (umT5-XXL: 24 layers, 64 heads)."""
    from transformers import UMT5Config

    vocab, d_model = state["token_embedding.weight"].shape
    buckets, heads = state["blocks.0.pos_embedding.embedding.weight"].shape
    layers = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    return UMT5Config(vocab_size=vocab, d_model=d_model, d_kv=d_model // heads, num_heads=heads,
                      d_ff=state["blocks.0.ffn.fc1.weight"].shape[0], num_layers=layers,
                      relative_attention_num_buckets=buckets, relative_attention_max_distance=128,
                      feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, tie_word_embeddings=False,
                      is_encoder_decoder=False, use_cache=False)


class TransformerTextEncoder:
    """A Hugging Face encoder + tokenizer: ``encode(prompt) -> (L, d_model)``, the last hidden
    states of the prompt's real tokens (padding masked out and trimmed)."""

    def __init__(self, model, tokenizer, text_len: int = 512, device: str | torch.device = "cpu") -> None:
        self.model = model.to(device).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.text_len = text_len
        self.device = torch.device(device)

    @classmethod
    def load_umt5(cls, weights: str | Path, tokenizer: str | Path, text_len: int = 512,
             dtype: torch.dtype = torch.bfloat16, device: str | torch.device = "cpu") -> TransformerTextEncoder:
        """``weights``: a UMT5EncoderModel folder or Wan's ``.pth``; ``tokenizer``: a tokenizer folder."""
        from transformers import AutoTokenizer, UMT5EncoderModel

        weights, tokenizer = Path(weights), Path(tokenizer)
        if not tokenizer.is_dir():
            raise CheckpointError(f"{tokenizer}: tokenizer folder not found")
        tok = AutoTokenizer.from_pretrained(str(tokenizer), local_files_only=True)
        if weights.is_dir():
            model = UMT5EncoderModel.from_pretrained(str(weights), local_files_only=True, dtype=dtype)
        else:
            state = read_state_dict(weights)
            with torch.device("meta"):
                model = UMT5EncoderModel(umt5_config_from_wan_state(state))
            model = model.to_empty(device="cpu")
            hf_state = {wan_t5_to_hf(k): v for k, v in state.items()}
            hf_state["encoder.embed_tokens.weight"] = hf_state["shared.weight"]  # tied in HF
            load_into(model, hf_state, str(weights))
            model = model.to(dtype)
        log.info("loaded umT5 text encoder from %s", weights)
        return cls(model, tok, text_len, device)

    @torch.inference_mode()
    def encode(self, prompt: str) -> torch.Tensor:
        batch = self.tokenizer([clean_prompt(prompt)], padding="max_length", truncation=True,
                               max_length=self.text_len, add_special_tokens=True, return_tensors="pt")
        ids, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state  # (1, text_len, d)
        return hidden[0, : int(mask.sum())].float().cpu()
