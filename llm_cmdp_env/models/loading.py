"""Loading teacher/student models and their tokenizer; the vocabulary check between them."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

ZOO_PREFIX = "zoo:"


def resolve_model(spec: str | os.PathLike) -> str:
    """Where to load a model from: ``"zoo:teacher"``/``"zoo:student"`` -> the shipped folder, a local folder as
    is, a Hugging Face id as is when it can be loaded (online, or in the local cache when offline).

    Raises
    ------
    ValueError
        For a name that is none of these, naming the valid forms (``student`` -> did you mean ``zoo:student``?),
        instead of an error deep inside the Hub client.
    """
    spec = str(spec)
    if spec.startswith(ZOO_PREFIX):
        from llm_cmdp_env.zoo import zoo_model_path

        return str(zoo_model_path(spec[len(ZOO_PREFIX) :]))
    if os.path.isdir(spec):
        _check_config_file(Path(spec) / "config.json")
        return spec
    if os.path.exists(spec) or not _hub_offline() or _in_hub_cache(spec):
        return spec
    from llm_cmdp_env.zoo import ZOO_MODELS

    hint = f" Did you mean zoo:{spec}?" if spec in ZOO_MODELS else ""
    raise ValueError(
        f"model {spec!r} not found: it is not a local folder, not a shipped model "
        f"({', '.join(ZOO_PREFIX + m for m in ZOO_MODELS)}), and not a Hugging Face id in the local cache "
        f"(HF_HUB_OFFLINE is set, so nothing is downloaded).{hint}"
    )


def _check_config_file(path: Path) -> None:
    """A model folder's ``config.json``, when present, must hold a JSON object (transformers would report a list, a
    number or a cut-off file as a missing ``model_type``)."""
    if not path.is_file():
        return
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}): the model folder's config was cut or edited") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} holds a JSON {type(value).__name__}, not an object: not a model's config (nor a run "
                         "folder's settings)")


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return True
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - an invalid repo id is simply not in the cache
        return False
    return isinstance(found, str)


def _parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | str | None:
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}: expected one of {sorted(names)} or a torch.dtype")
    return names[dtype]


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """No "Loading weights" / "Writing model shards" progress bar per model load or save (an env loads its models
    at every construction); the previous setting is restored."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def load_model(
    spec: str | os.PathLike | PreTrainedModel,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    **from_pretrained_kwargs: Any,
) -> PreTrainedModel:
    """Return a frozen causal LM in eval mode on ``device``.

    ``spec`` is a loaded model (moved to ``device``), ``"zoo:teacher"``/``"zoo:student"`` (the shipped
    pair), a local path, or a Hugging Face id (which must already be in the local cache when offline).
    """
    if isinstance(spec, torch.nn.Module):
        model = spec
        if dtype is not None:
            model = model.to(_parse_dtype(dtype))
    else:
        kwargs = dict(from_pretrained_kwargs)
        if dtype is not None:
            kwargs["dtype"] = _parse_dtype(dtype)
        with quiet_loading():
            model = AutoModelForCausalLM.from_pretrained(resolve_model(spec), **kwargs)
    model = model.to(device)
    model.eval()
    model.requires_grad_(False)
    return model


def load_tokenizer(spec: str | os.PathLike | PreTrainedModel, **kwargs: Any) -> PreTrainedTokenizerBase:
    """Load the tokenizer that belongs to a model spec (for a loaded model: its ``name_or_path``)."""
    if isinstance(spec, torch.nn.Module):
        path = getattr(spec, "name_or_path", None) or getattr(spec.config, "_name_or_path", None)
        if not path:
            raise ValueError("cannot find the tokenizer of a model object; pass tokenizer= explicitly")
        spec = path
    return AutoTokenizer.from_pretrained(resolve_model(spec), **kwargs)


def vocab_size(model: PreTrainedModel) -> int:
    """Size of the model's next-token distribution (rows of its output embedding)."""
    out = model.get_output_embeddings()
    if out is not None and getattr(out, "weight", None) is not None:
        return int(out.weight.shape[0])
    return int(model.config.vocab_size)


def check_same_vocab(teacher: PreTrainedModel, student: PreTrainedModel) -> int:
    """Raise ``ValueError`` naming both sizes unless teacher and student share one vocabulary size."""
    vt, vs = vocab_size(teacher), vocab_size(student)
    if vt != vs:
        raise ValueError(
            f"teacher and student vocabularies differ: teacher has {vt} tokens, student has {vs}; "
            "they must share one tokenizer (when they do and the larger only has padding rows past it, as "
            "Qwen2.5-7B's 152,064 against 1.5B's 151,936, pass vocab_size=<the smaller> to the env)"
        )
    return vt


def cut_output_vocab(model: PreTrainedModel, n: int) -> PreTrainedModel:
    """Keep the first ``n`` rows of ``model``'s output layer (a view: no copy), so its next-token distribution is
    over ``n`` tokens: for a teacher whose output rows past its tokenizer are padding (never a real token),
    against a student with fewer such rows. The distribution is renormalised over the kept rows; the padding
    rows were never a training target, so the mass they held is negligible."""
    head = model.get_output_embeddings()
    have = vocab_size(model)
    if not 0 < n <= have:
        raise ValueError(f"cannot cut the output vocabulary to {n} rows: the model has {have}")
    if n == have:
        return model
    # built on the meta device: its own weights are replaced at once, so none are allocated or initialised
    new = torch.nn.Linear(head.weight.shape[1], n, bias=getattr(head, "bias", None) is not None, device="meta",
                          dtype=head.weight.dtype)
    new.weight = torch.nn.Parameter(head.weight[:n], requires_grad=head.weight.requires_grad)
    if new.bias is not None:
        new.bias = torch.nn.Parameter(head.bias[:n], requires_grad=head.bias.requires_grad)
    model.set_output_embeddings(new)
    return model


def eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> frozenset[int]:
    """All token ids that end an episode: the tokenizer's EOS and the model's generation EOS ids."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen = getattr(model, "generation_config", None)
    eos = getattr(gen, "eos_token_id", None) if gen is not None else None
    if isinstance(eos, int):
        ids.add(eos)
    elif isinstance(eos, (list, tuple)):
        ids.update(int(e) for e in eos)
    if not ids:
        raise ValueError("the tokenizer and model define no EOS token; episodes could never terminate")
    return frozenset(ids)


_POSITION_KEYS = ("n_positions", "max_position_embeddings", "n_ctx", "max_sequence_length", "seq_length")


def max_positions(model: PreTrainedModel) -> int | None:
    """The longest sequence the model's position table allows (``n_positions``, ``max_position_embeddings``, ...),
    or None when its config states none."""
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    for key in _POSITION_KEYS:
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
