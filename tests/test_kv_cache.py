"""The growable KV cache appends in place (no per-token copy) and gives the model's own numbers."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from llm_cmdp_env.hf_compat import cache_kwargs, output_cache
from llm_cmdp_env.kv_cache import GrowableCache, new_cache

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
