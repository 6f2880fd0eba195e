"""Greedy accuracy of the shipped teacher and student on held-out procedural problems.

``evaluate()`` decodes ``ArithmeticTask("test")[0..n-1]`` greedily in left-padded batches (the attention
mask is passed so ``generate`` derives correct position ids) and grades each completion with
:func:`llm_cmdp_env.judge.verify.check_answer`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from llm_cmdp_env.judge.verify import check_answer
from llm_cmdp_env.models.loading import quiet_loading
from llm_cmdp_env.tasks.arithmetic import PLAIN_PROMPT_TEMPLATE, SPLIT_MARKER, ArithmeticTask
from llm_cmdp_env.tasks.base import Problem
from llm_cmdp_env.zoo import ZOO_MODELS, zoo_model_path

__all__ = ["accuracy", "evaluate", "greedy_completions"]


@torch.no_grad()
def greedy_completions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    batch_size: int = 64,
    max_new_tokens: int = 128,
) -> tuple[list[str], list[bool]]:
    """Greedy-decode a completion for every prompt.

    Prompts are sorted by token length before batching (less padding) and results are returned in input
    order.

    Returns
    -------
    completions : list of str
        Decoded new tokens, special tokens removed.
    ended : list of bool
        Whether each completion stopped by emitting EOS (rather than hitting ``max_new_tokens``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    eos_id = tokenizer.eos_token_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    device = next(model.parameters()).device
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    completions: list[str] = [""] * len(prompts)
    ended: list[bool] = [False] * len(prompts)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = max(len(encoded[i]) for i in idx)
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):  # left padding
                ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
                mask[row, width - len(encoded[i]) :] = 1
            out = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                do_sample=False,
                max_new_tokens=max_new_tokens,
                eos_token_id=eos_id,
                pad_token_id=pad_id,
            )
            new = out[:, width:].cpu()
            for row, i in enumerate(idx):
                toks = new[row].tolist()
                if eos_id in toks:
                    toks = toks[: toks.index(eos_id)]
                    ended[i] = True
                completions[i] = tokenizer.decode(toks, skip_special_tokens=True)
    finally:
        model.train(was_training)
    return completions, ended


def accuracy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    problems: Sequence[Problem],
    batch_size: int = 64,
    max_new_tokens: int = 128,
    prefix: str = "",
) -> dict[str, float]:
    """Greedy accuracy and EOS rate of ``model`` on ``problems`` (prompted with the plain template), and the
    fraction of solutions written in the shortcut style (``split_style``: starting with ``SPLIT_MARKER``).
    ``prefix`` is forced as the start of every completion (e.g. ``" " + SPLIT_MARKER + "\n"``: the accuracy
    in that style)."""
    prompts = [PLAIN_PROMPT_TEMPLATE.format(question=p.question) + prefix for p in problems]
    completions, ended = greedy_completions(model, tokenizer, prompts, batch_size, max_new_tokens)
    correct = [check_answer(c, p.answer).correct for c, p in zip(completions, problems)]
    split = [(prefix + c).strip().startswith(SPLIT_MARKER) for c in completions]
    n = max(len(problems), 1)
    return {"accuracy": sum(correct) / n, "eos_rate": sum(ended) / n, "split_style": sum(split) / n}


def evaluate(
    n: int = 500,
    device: str = "cpu",
    batch_size: int = 64,
    max_new_tokens: int = 224,
) -> dict[str, Any]:
    """Measure greedy accuracy of every shipped model on ``ArithmeticTask("test")[0..n-1]`` (and the share of its
    solutions written in the shortcut style).

    Parameters
    ----------
    n : int
        Number of held-out test-split problems.
    device : str
        Torch device for both models.
    batch_size, max_new_tokens : int
        Decoding batch size and per-completion token cap.

    Returns
    -------
    dict
        ``n``, ``<model>_accuracy``, ``<model>_eos_rate``, ``<model>_shortcut_style`` for every shipped model
        (fraction of completions that ended with EOS), ``seconds``, and the decoding settings.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    task = ArithmeticTask("test")
    problems = [task[i] for i in range(n)]
    result: dict[str, Any] = {"n": n, "split": "test", "max_new_tokens": max_new_tokens, "device": device}
    t0 = time.perf_counter()
    for name in ZOO_MODELS:
        path = zoo_model_path(name)
        tokenizer = AutoTokenizer.from_pretrained(path)
        with quiet_loading():
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)
        scores = accuracy(model, tokenizer, problems, batch_size, max_new_tokens)
        result[f"{name}_accuracy"] = scores["accuracy"]
        result[f"{name}_eos_rate"] = scores["eos_rate"]
        result[f"{name}_shortcut_style"] = scores["split_style"]
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result


if __name__ == "__main__":  # pragma: no cover - convenience entry point
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=224)
    args = parser.parse_args()
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    print(json.dumps(evaluate(args.n, args.device, args.batch_size, args.max_new_tokens), indent=2))
