"""The growable KV cache appends in place (no per-token copy) and gives the model's own numbers."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from llm_cmdp_env.models.hf_compat import cache_kwargs, decode_mask, output_cache
from llm_cmdp_env.scoring.kv_cache import GrowableCache, new_cache

pytestmark = pytest.mark.skipif(GrowableCache is None, reason="transformers without the layer cache API")


def _model():
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=50, n_positions=256, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg).eval()


@torch.inference_mode()
def test_growable_cache_matches_default_cache_and_appends_in_place():
    model = _model()
    ids = torch.randint(1, 50, (2, 7))
    steps = torch.randint(1, 50, (40, 2, 1))
    ours, ref = GrowableCache(), None
    out_a = model(input_ids=ids, use_cache=True, **cache_kwargs(model, ours))
    out_b = model(input_ids=ids, use_cache=True)
    ours, ref = output_cache(out_a), output_cache(out_b)
    pointers = set()
    for tok in steps:
        out_a = model(input_ids=tok, use_cache=True, **cache_kwargs(model, ours))
        out_b = model(input_ids=tok, use_cache=True, **cache_kwargs(model, ref))
        ours, ref = output_cache(out_a), output_cache(out_b)
        torch.testing.assert_close(out_a.logits, out_b.logits, atol=1e-5, rtol=0)
        pointers.add(ours.layers[0].keys.data_ptr())
    assert ours.get_seq_length() == 47
    # 47 tokens fit in the first buffer (capacity >= 64): the storage never moved
    assert len(pointers) == 1


def test_new_cache_declines_sliding_window_models():
    model = _model()
    assert isinstance(new_cache(model), GrowableCache)
    model.config.sliding_window = 16
    assert new_cache(model) is None


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@torch.inference_mode()
def test_decode_mask_gives_the_same_logits_as_transformers_own_mask(attn):
    """The prepared 4D decode mask (sdpa) or the unchanged 2D mask (other kernels) gives the logits that
    transformers' own mask construction gives, on a left-padded batch."""
    model = _model()
    model.config._attn_implementation = attn
    ids = torch.randint(1, 50, (2, 6))
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[0, :3] = 0  # row 0 is left-padded
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
    cache = output_cache(out)
    ref_cache = output_cache(model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True))
    mask = torch.cat([mask, torch.ones(2, 1, dtype=torch.long)], 1)
    tok = torch.tensor([[5], [7]])
    step_pos = mask.sum(-1, keepdim=True) - 1
    prepared = decode_mask(model, mask)
    assert prepared.dim() == (4 if attn == "sdpa" else 2)
    a = model(input_ids=tok, attention_mask=prepared, position_ids=step_pos, use_cache=True,
              **cache_kwargs(model, cache)).logits
    b = model(input_ids=tok, attention_mask=mask, position_ids=step_pos, use_cache=True,
              **cache_kwargs(model, ref_cache)).logits
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
