"""The LLM policy: any Hugging Face causal LM as a token-level policy, with an optional value head, optional
conditioning on what a constraint rule adds to the observation, optional LoRA, gradient checkpointing and device
auto-selection."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel

from llm_cmdp_agents.engine.conditioning import (
    condition_embedding,
    condition_inputs,
    condition_projection,
    current_names,
)
from llm_cmdp_agents.engine.device import autocast, resolve_device
from llm_cmdp_env.common.atomic_io import write_json_atomic
from llm_cmdp_env.models.loading import quiet_loading, resolve_model
from llm_cmdp_env.scoring.decode_modes import check_decode
from llm_cmdp_env.scoring.logprobs import left_pad

__all__ = ["ActionEval", "LLMPolicy", "resolve_model_path"]

AGENT_CONFIG = "agent_config.json"
AGENT_HEADS = "agent_heads.pt"


def resolve_model_path(spec: str | os.PathLike) -> str:
    """``"zoo:student"``/``"zoo:teacher"`` to the shipped folder; a folder or a loadable HF id unchanged (see
    :func:`llm_cmdp_env.models.loading.resolve_model`, which names the valid forms for anything else)."""
    return resolve_model(spec)


@dataclass
class ActionEval:
    """What a training forward returns for a batch of (prompt, completion) pairs, padded to ``[B, T]``.

    Attributes
    ----------
    logprobs : Tensor [B, T]
        log pi(a_t | s_t) of the completion tokens (differentiable).
    entropy : Tensor [B, T]
        Entropy of pi(. | s_t).
    values : Tensor [B, T] or None
        Value-head estimates V(s_t) (None without a value head).
    mask : Tensor [B, T]
        1 where t < len(completion).
    full_logprobs : Tensor [B, T, V] or None
        log pi(. | s_t), the whole next-token distribution (differentiable; only when asked for: distillation
        losses compare it with the teacher's).
    """

    logprobs: torch.Tensor
    entropy: torch.Tensor
    values: torch.Tensor | None
    mask: torch.Tensor
    full_logprobs: torch.Tensor | None = None


def _disable_dropout(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    for key in ("attn_pdrop", "resid_pdrop", "embd_pdrop", "attention_dropout", "hidden_dropout",
                "dropout", "summary_first_dropout"):
        if isinstance(getattr(model.config, key, None), float):
            setattr(model.config, key, 0.0)


class LLMPolicy(nn.Module):
    """A causal LM as a policy over tokens.

    The policy's distribution is ``softmax(logits / temperature)`` (the temperature is chosen per call and
    must be the same at sampling and training time, which the trainer guarantees). Dropout is disabled:
    the distribution that sampled the tokens must be the one whose ratio PPO/GRPO take.

    Parameters
    ----------
    model : str, path or PreTrainedModel
        ``"zoo:student"`` (shipped), a local path, a Hugging Face id, or a loaded model (used as is).
    value_head : bool
        Add a linear value head on the last hidden state (PPO needs it; GRPO does not).
    detach_value : bool
        Stop the value loss's gradient at the LM's hidden state (default True): the critic is a linear probe
        of the policy's features. Why: with a shared trunk the value-regression gradient is much larger than
        the policy gradient of a confident LM, dominates the clipped update and measurably degraded the
        shipped student in our runs.
    conditioning : bool
        Add a zero-initialised linear projection of the value a constraint rule adds to the observation to every
        input token embedding, so the policy can act on it
        (:mod:`llm_cmdp_agents.engine.conditioning`). Zero init: the untrained projection leaves the model's
        behaviour unchanged.
    device : str or torch.device
        ``"auto"`` (CUDA when present, else CPU), or an explicit device.
    lora : dict, optional
        Train LoRA adapters (peft) instead of all weights, e.g. ``{"r": 8, "alpha": 16}``; keys ``r``,
        ``alpha``, ``dropout``, ``target_modules`` (peft infers them for known architectures).
    gradient_checkpointing : bool
        Recompute activations in the backward pass (less memory, ~30% slower).
    bf16_autocast : bool
        Use bf16 autocast on CUDA (default True; ignored on CPU).
    model_kwargs : dict, optional
        Extra ``from_pretrained`` arguments when ``model`` is a name.
    decode : str
        How the sampler decodes: ``"eager"`` (default), ``"static"`` (a fixed-size KV cache), ``"compiled"``
        (the same, compiled) or ``"cudagraph"`` (the same, replayed from a CUDA graph; CUDA only); see
        :mod:`llm_cmdp_agents.engine.static_decode`.
    """

    def __init__(
        self,
        model: str | os.PathLike | PreTrainedModel = "zoo:student",
        value_head: bool = True,
        conditioning: bool = False,
        detach_value: bool = True,
        device: str | torch.device = "auto",
        lora: dict[str, Any] | None = None,
        gradient_checkpointing: bool = False,
        bf16_autocast: bool = True,
        model_kwargs: dict[str, Any] | None = None,
        decode: str = "eager",
    ) -> None:
        super().__init__()
        self.device = resolve_device(device)
        self.decode = check_decode(decode, self.device)
        self.bf16_autocast = bool(bf16_autocast)
        if isinstance(model, PreTrainedModel):
            hf = model
            self.model_spec = str(getattr(model, "name_or_path", "") or "")
        else:
            self.model_spec = str(model)
            with quiet_loading():
                hf = AutoModelForCausalLM.from_pretrained(resolve_model_path(model), **(model_kwargs or {}))
        hf.requires_grad_(True)
        _disable_dropout(hf)
        self.lora_config = dict(lora) if lora else None
        if gradient_checkpointing:
            if hasattr(hf, "activation_checkpointing_enable"):  # transformers >= 5.x name
                hf.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if self.lora_config:
                hf.enable_input_require_grads()
        self.gradient_checkpointing = bool(gradient_checkpointing)
        if self.lora_config:
            lm = _apply_lora(hf, self.lora_config)
        else:
            lm = hf
        self.lm = lm
        hidden = int(hf.get_input_embeddings().weight.shape[1])
        self.value_head = nn.Linear(hidden, 1) if value_head else None
        self.detach_value = bool(detach_value)
        if self.value_head is not None:
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)
        self.condition_proj = condition_projection(hidden) if conditioning else None
        self.sharding: Any = None  # set by llm_cmdp_agents.engine.data_parallel.shard_policy (FSDP)
        self.to(self.device)
        self.eval()

    # ------------------------------------------------------------------ properties
    @property
    def hf_model(self) -> PreTrainedModel:
        """The underlying transformers model (the base model under a LoRA wrapper)."""
        lm = self.lm
        return lm.get_base_model() if hasattr(lm, "get_base_model") else lm

    @property
    def conditioned(self) -> bool:
        """Whether the policy reads the value a constraint rule adds to the observation."""
        return self.condition_proj is not None

    @property
    def vocab_size(self) -> int:
        """Size of the next-token distribution."""
        return int(self.hf_model.get_output_embeddings().weight.shape[0])

    def autocast(self):
        """The mixed-precision context of this policy's device (bf16 on CUDA, none on CPU)."""
        return autocast(self.device, self.bf16_autocast)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimiser updates (LoRA adapters + heads under LoRA, everything otherwise)."""
        return [p for p in self.parameters() if p.requires_grad]

    # ------------------------------------------------------------------ forward passes
    def input_embeddings(self, ids: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings of ``ids`` plus, for a conditioned policy, the projection of ``condition`` (same shape
        as ``ids``)."""
        emb = self.hf_model.get_input_embeddings()(ids)
        if condition is not None:
            if self.condition_proj is None:
                raise ValueError("a condition was given but the policy has no conditioning")
            emb = emb + condition_embedding(self.condition_proj, condition).to(emb.dtype)
        return emb

    def evaluate_actions(
        self,
        prompts: Sequence[Sequence[int]],
        completions: Sequence[Sequence[int]],
        temperature: float = 1.0,
        conditions: Sequence[torch.Tensor] | None = None,
        full: bool = False,
    ) -> ActionEval:
        """Log-probs, entropies and values of the completion tokens, in one forward (with gradients).

        Sequences ``prompt + completion`` are left-padded so every completion ends at the right edge; only
        the last ``max_T + 1`` positions go through the LM head. ``conditions[i]`` is the observed value before
        each token of completion ``i`` (``[T_i]``), needed iff the policy is conditioned.
        """
        if self.conditioned != (conditions is not None):
            raise ValueError("conditions must be given exactly when the policy is conditioned")
        dev = self.device
        n = len(prompts)
        seqs = [list(p) + list(c) for p, c in zip(prompts, completions, strict=True)]
        lens = torch.tensor([len(c) for c in completions], device=dev)
        if int(lens.min()) < 1:
            raise ValueError("every completion needs at least one token")
        t_max = int(lens.max())
        ids, mask = left_pad(seqs, 0, dev)  # pad id 0: masked, never attended
        width = ids.shape[1]
        cond = None if conditions is None else condition_inputs(conditions, seqs, completions, width, dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        keep = t_max + 1
        kwargs: dict[str, Any] = {}
        params = _forward_params(self.hf_model)
        if "logits_to_keep" in params:
            kwargs["logits_to_keep"] = keep
        with self.autocast():
            emb = self.input_embeddings(ids, cond)
            out = self.lm(inputs_embeds=emb, attention_mask=mask, position_ids=pos, use_cache=False,
                          output_hidden_states=self.value_head is not None, **kwargs)
        logits = out.logits[:, -keep:]
        t_idx = torch.arange(t_max, device=dev)[None, :]
        valid = t_idx < lens[:, None]
        idx = (t_max - lens[:, None] + t_idx).clamp(0, t_max)  # position (in the kept window) predicting token t
        sel = logits.gather(1, idx[..., None].expand(-1, -1, logits.shape[-1])).float()
        logp_all = torch.log_softmax(sel / temperature, dim=-1)
        acts = torch.zeros(n, t_max, dtype=torch.long, device=dev)
        for i, c in enumerate(completions):
            acts[i, : len(c)] = torch.as_tensor(list(c), device=dev)
        logp = logp_all.gather(-1, acts[..., None]).squeeze(-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        values = None
        if self.value_head is not None:
            hid = out.hidden_states[-1][:, -keep:]
            h = hid.gather(1, idx[..., None].expand(-1, -1, hid.shape[-1]))
            if self.detach_value:
                h = h.detach()
            values = self.value_head(h.float()).squeeze(-1)
        m = valid.float()
        return ActionEval(logp * m, entropy * m, None if values is None else values * m, m,
                          logp_all if full else None)

    # ------------------------------------------------------------------ saving and loading
    def save_pretrained(self, path: str | os.PathLike, tokenizer: Any = None) -> None:
        """Write the policy to a folder that also loads as a plain Hugging Face model (LoRA merged in).

        The folder holds the transformers model (+ ``tokenizer`` when given), ``agent_heads.pt`` (value head,
        condition projection) and ``agent_config.json``; :meth:`from_pretrained` restores all of it, and the
        env can take the folder as ``student=``.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.lora_config:
            import copy

            merged = copy.deepcopy(self.lm).merge_and_unload()
            with quiet_loading():
                merged.save_pretrained(path)
        else:
            with quiet_loading():
                self.hf_model.save_pretrained(path)
        if tokenizer is not None:
            tokenizer.save_pretrained(path)
        heads = {}
        if self.value_head is not None:
            heads["value_head"] = self.value_head.state_dict()
        if self.condition_proj is not None:
            heads["condition_proj"] = self.condition_proj.state_dict()
        torch.save(heads, path / AGENT_HEADS)
        cfg = {"value_head": self.value_head is not None, "conditioning": self.conditioned,
               "base_model": self.model_spec, "trained_with_lora": self.lora_config}
        write_json_atomic(path / AGENT_CONFIG, cfg)  # last: its presence says the folder is complete

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device = "auto", **kwargs: Any) -> LLMPolicy:
        """Load a policy saved by :meth:`save_pretrained`, or wrap any model folder/id (then ``kwargs`` choose
        the heads)."""
        local = Path(resolve_model_path(path))
        cfg_file = local / AGENT_CONFIG
        if cfg_file.is_file():
            cfg = current_names(json.loads(cfg_file.read_text()))
            kwargs.setdefault("value_head", cfg["value_head"])
            kwargs.setdefault("conditioning", cfg.get("conditioning", False))
        policy = cls(str(local) if local.exists() else str(path), device=device, **kwargs)
        heads_file = local / AGENT_HEADS
        if heads_file.is_file():
            heads = current_names(torch.load(heads_file, map_location=policy.device, weights_only=True))
            if policy.value_head is not None and "value_head" in heads:
                policy.value_head.load_state_dict(heads["value_head"])
            if policy.condition_proj is not None and "condition_proj" in heads:
                policy.condition_proj.load_state_dict(heads["condition_proj"])
        policy.model_spec = str(path)
        return policy

    def trainable_names(self) -> set[str]:
        """The names of the trained tensors (everything with ``requires_grad``)."""
        return {n for n, p in self.named_parameters() if p.requires_grad}

    def check_trainable_state(self, state: dict[str, Any]) -> None:
        """A ValueError unless ``state`` holds exactly the trained tensors (names only)."""
        state = current_names(state)
        names = self.trainable_names()
        missing, unexpected = names - set(state), set(state) - names
        if missing or unexpected:
            raise ValueError(f"checkpoint does not match the policy: missing {sorted(missing)[:5]}, "
                             f"unexpected {sorted(unexpected)[:5]}")

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The trained tensors only: what a checkpoint must hold."""
        names = self.trainable_names()
        return {k: v.detach().clone() for k, v in self.state_dict().items() if k in names}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`trainable_state_dict` output; every trainable tensor must be present."""
        state = current_names(state)
        self.check_trainable_state(state)
        self.load_state_dict(state, strict=False)


def _forward_params(model: nn.Module) -> frozenset[str]:
    import inspect

    return frozenset(inspect.signature(type(model).forward).parameters)


def _apply_lora(model: PreTrainedModel, cfg: dict[str, Any]) -> nn.Module:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("lora= needs the peft package: pip install 'llm-cmdp-env[agents]'") from e
    unknown = set(cfg) - {"r", "alpha", "dropout", "target_modules"}
    if unknown:
        raise ValueError(f"unknown lora keys {sorted(unknown)}; accepted: r, alpha, dropout, target_modules")
    lcfg = LoraConfig(r=int(cfg.get("r", 8)), lora_alpha=int(cfg.get("alpha", 16)),
                      lora_dropout=float(cfg.get("dropout", 0.0)), target_modules=cfg.get("target_modules"),
                      task_type="CAUSAL_LM")
    return get_peft_model(model, lcfg)
