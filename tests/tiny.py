"""Tiny configurations and models shared by the tests (CPU, seconds)."""

from __future__ import annotations

import torch

from worldcast import EngineConfig, ModelConfig
from worldcast.models.registry import random_model
from worldcast.models.wan.dit import CausalWanDiT

TINY = ModelConfig(dim=64, ffn_dim=128, num_heads=4, num_layers=2, freq_dim=32, text_dim=32, text_len=16)


def tiny_engine_config(**changes: object) -> EngineConfig:
    base = dict(model=TINY, height=32, width=48, dtype="float32")
    return EngineConfig(**{**base, **changes})


def strong_model(config: ModelConfig = TINY, dtype: torch.dtype = torch.float32, seed: int = 0) -> CausalWanDiT:
    """A random model whose attention branches matter.

    With PyTorch's default init the modulation gates are ~1/sqrt(dim) and attention is nearly
    uniform (it averages values away), so earlier frames barely move the output and a broken
    cache could hide below the tolerance. Large gates and sharp attention (q/k norm weights of
    3, logits of std ~9) make each layer's self-attention, and so the cache, matter.
    """
    model = random_model(config, seed=seed, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed + 1)
    for block in model.blocks:
        block.modulation.data = torch.randn(block.modulation.shape, generator=gen)
        block.self_attn.norm_q.weight.data.fill_(3.0)
        block.self_attn.norm_k.weight.data.fill_(3.0)
    return model.to_inference_dtype(dtype)




def tiny_umt5(text_dim: int = 32, seed: int = 0):
    """A 2-layer random UMT5 encoder and a word-level tokenizer with T5's special tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    config = UMT5Config(vocab_size=64, d_model=text_dim, d_kv=8, num_heads=text_dim // 8, d_ff=48, num_layers=2,
                        relative_attention_num_buckets=8, feed_forward_proj="gated-gelu",
                        is_encoder_decoder=False, use_cache=False, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = UMT5EncoderModel(config).eval()
    words = ["a", "red", "fox", "in", "the", "snow", "city", "at", "night", "running", "through", "fresh"]
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    return model, tokenizer


# Hugging Face UMT5 encoder key -> Wan's T5 key (wan/modules/t5.py names).
def hf_to_wan_t5(key: str) -> str | None:
    import re
    rules = [
        (r"^shared\.", "token_embedding."), (r"^encoder\.final_layer_norm\.", "norm."),
        (r"^encoder\.block\.(\d+)\.layer\.0\.layer_norm\.", r"blocks.\1.norm1."),
        (r"^encoder\.block\.(\d+)\.layer\.0\.SelfAttention\.relative_attention_bias\.",
         r"blocks.\1.pos_embedding.embedding."),
        (r"^encoder\.block\.(\d+)\.layer\.0\.SelfAttention\.([qkvo])\.", r"blocks.\1.attn.\2."),
        (r"^encoder\.block\.(\d+)\.layer\.1\.layer_norm\.", r"blocks.\1.norm2."),
        (r"^encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.wi_0\.", r"blocks.\1.ffn.gate.0."),
        (r"^encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.wi_1\.", r"blocks.\1.ffn.fc1."),
        (r"^encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.wo\.", r"blocks.\1.ffn.fc2."),
    ]
    if key == "encoder.embed_tokens.weight":
        return None  # tied to shared.weight; Wan stores it once
    for pattern, replacement in rules:
        key = re.sub(pattern, replacement, key)
    return key


def random_world_dir(path, seed: int = 0):
    """A directory in the layout 'worldcast train' writes, with random weights of the built-in
    world model's real architecture (so the CLI and runtime load it like the shipped one)."""
    from worldcast.world.train import save_random_world

    return save_random_world(path, seed=seed)


def benchmark_module(name: str):
    """A script of benchmarks/ imported as a module (the scripts are not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
