import pytest
import torch

from worldcast.models.attention import BlockCausalKV, DenseKV, block_causal_mask


@pytest.mark.parametrize("blocks", [[3, 3, 3], [1, 3, 3], [2]])
def test_block_causal_kv_equals_the_masked_dense_attention(blocks):
    torch.manual_seed(0)
    tokens = 4
    q, k, v = (torch.randn(2, sum(blocks) * tokens, 3, 8, requires_grad=True) for _ in range(3))
    dense = DenseKV(block_causal_mask(blocks, tokens)).attend(q, k, v)
    chunked = BlockCausalKV(blocks, tokens).attend(q, k, v)
    torch.testing.assert_close(chunked, dense)
    grads = torch.autograd.grad(chunked.square().sum(), (q, k, v))
    expected = torch.autograd.grad(dense.square().sum(), (q, k, v))
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)


def test_block_causal_kv_refuses_a_token_count_its_blocks_do_not_hold():
    q = torch.randn(1, 10, 2, 4)
    with pytest.raises(ValueError, match="10 tokens, the blocks hold 12"):
        BlockCausalKV([1, 2], 4).attend(q, q, q)
    with pytest.raises(ValueError, match="must be positive"):
        BlockCausalKV([1, 0], 4)
