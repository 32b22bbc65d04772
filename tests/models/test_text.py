import pytest
import torch

from tiny import hf_to_wan_t5, tiny_umt5
from worldcast.models.checkpoint import CheckpointError
from worldcast.models.wan.text import TransformerTextEncoder, clean_prompt


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("umt5")
    model, tokenizer = tiny_umt5()
    model.save_pretrained(root / "text_encoder")
    tokenizer.save_pretrained(root / "tokenizer")
    wan_state = {hf_to_wan_t5(k): v.clone() for k, v in model.state_dict().items() if hf_to_wan_t5(k)}
    assert "blocks.1.ffn.gate.0.weight" in wan_state and "blocks.0.pos_embedding.embedding.weight" in wan_state
    torch.save(wan_state, root / "models_t5_umt5-xxl-enc-bf16.pth")
    return root, model, tokenizer


def test_clean_prompt_like_wan():
    assert clean_prompt("  a   red\n fox &amp;amp; snow ") == "a red fox & snow"


def test_hf_folder_and_wan_pth_give_the_same_embeddings(saved):
    root, model, tokenizer = saved
    hf = TransformerTextEncoder.load_umt5(root / "text_encoder", root / "tokenizer", text_len=16, dtype=torch.float32)
    wan = TransformerTextEncoder.load_umt5(root / "models_t5_umt5-xxl-enc-bf16.pth", root / "tokenizer", text_len=16,
                               dtype=torch.float32)
    a, b = hf.encode("a red fox in the snow"), wan.encode("a red fox in the snow")
    assert a.shape == (7, 32)  # six words and </s>, padding trimmed
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    # Trimmed embeddings equal the first tokens of an unpadded forward pass (padding is masked).
    ids = tokenizer(["a red fox in the snow"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        direct = model(input_ids=ids).last_hidden_state[0]
    torch.testing.assert_close(a, direct, atol=1e-5, rtol=1e-5)


def test_long_prompts_are_truncated_to_text_len(saved):
    root, _, _ = saved
    enc = TransformerTextEncoder.load_umt5(root / "text_encoder", root / "tokenizer", text_len=8, dtype=torch.float32)
    assert enc.encode("a red fox " * 10).shape == (8, 32)


def test_missing_tokenizer_is_a_clear_error(saved, tmp_path):
    root, _, _ = saved
    with pytest.raises(CheckpointError, match="tokenizer folder not found"):
        TransformerTextEncoder.load_umt5(root / "text_encoder", tmp_path / "nope")
