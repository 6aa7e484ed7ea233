"""Attention masks and block shapes (models/transformer.py)."""
import torch

from mmdx.models.transformer import Block, MultiHeadAttention

torch.set_num_threads(1)


def test_causal_mask_hides_the_future():
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 6, 16)
    y = attn(x, causal=True)
    x2 = x.clone()
    x2[:, 4:] = torch.randn(2, 2, 16)  # change only the last two tokens
    y2 = attn(x2, causal=True)
    torch.testing.assert_close(y[:, :4], y2[:, :4])
    assert not torch.allclose(y[:, 4:], y2[:, 4:])
    # without the mask the early outputs do see the change
    assert not torch.allclose(attn(x)[:, :4], attn(x2)[:, :4])


def test_key_padding_mask_ignores_padded_keys():
    torch.manual_seed(0)
    block = Block(16, 2).eval()
    x = torch.randn(2, 5, 16)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    y = block(x, mask=mask)
    x2 = x.clone()
    x2[0, 3:] = 100 * torch.randn(2, 16)  # garbage in the padding of case 0
    y2 = block(x2, mask=mask)
    torch.testing.assert_close(y[0, :3], y2[0, :3])
    torch.testing.assert_close(y[1], y2[1])
