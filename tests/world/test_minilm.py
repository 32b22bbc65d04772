import torch

from worldcast.world.text import MINILM_DIM, load_minilm


def test_minilm_loads_offline_and_tells_scenes_apart():
    encoder = load_minilm(text_len=16)
    forest = encoder.encode("a top-down view of a forest at night")
    desert = encoder.encode("a top-down view of a desert at day")
    again = encoder.encode("a top-down view of a forest at night")
    assert forest.shape == (12, MINILM_DIM)  # [CLS] + 10 word pieces + [SEP]
    assert torch.equal(forest, again)
    cosine = torch.nn.functional.cosine_similarity(forest.mean(0), desert.mean(0), dim=0)
    assert cosine < 0.99
