import pytest
import torch

from tiny import TINY


@pytest.fixture
def prompt_embeds() -> torch.Tensor:
    return torch.randn(5, TINY.text_dim, generator=torch.Generator().manual_seed(7))
