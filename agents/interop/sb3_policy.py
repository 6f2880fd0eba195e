"""A stable-baselines3 bridge: an ``ActorCriticPolicy`` whose actor is a Hugging Face causal LM, so
``PPO(HFCausalLMPolicy, gym.make("MathDistill-v0"))`` trains the shipped student with SB3's own PPO.

SB3 steps the env one token at a time and re-encodes the whole observation (prompt + tokens so far, no KV
cache) at every forward: correct but slower than the project's own trainer, which samples with a KV cache and
scores through the fast path. Use this bridge to plug the env into SB3's tooling (callbacks, Lagrangian PPO
variants reading ``info["cost"]``), the agent's :class:`~llm_cmdp_agents.run.trainer.Trainer` for speed.
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces

try:
    from stable_baselines3.common.distributions import CategoricalDistribution
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.common.torch_layers import CombinedExtractor
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("the SB3 bridge needs stable-baselines3: pip install 'llm-cmdp-env[sb3]'") from e

from llm_cmdp_agents.engine.policy import LLMPolicy

__all__ = ["HFCausalLMPolicy"]


class HFCausalLMPolicy(ActorCriticPolicy):
    """SB3 actor-critic over a causal LM: logits of the next token = the action distribution, a linear value
    head on the same last hidden state.

    Observations are MathDistill's ``Dict(input_ids, attention_mask)`` (prompt then generated tokens, padded on
    the right); with ``conditioning=True`` the one entry a constraint rule adds (e.g. Sauté's budget state, under
    its ``obs_key``) is read.

    Parameters
    ----------
    observation_space, action_space, lr_schedule
        Given by SB3.
    model : str or path
        The LM (``"zoo:student"`` default, a folder, or a Hugging Face id).
    conditioning : bool
        Condition on that entry (see :class:`~llm_cmdp_agents.engine.policy.LLMPolicy`; ``budget_conditioning`` is
        the name policies saved by older versions use).
    lora : dict, optional
        Train LoRA adapters only.
    **kwargs
        Other ``ActorCriticPolicy`` arguments (e.g. ``optimizer_kwargs``); network-architecture ones are unused.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Any,
        model: str = "zoo:student",
        conditioning: bool = False,
        lora: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        conditioning = bool(kwargs.pop("budget_conditioning", conditioning))
        if not isinstance(action_space, spaces.Discrete):
            raise TypeError(f"HFCausalLMPolicy needs a Discrete (token) action space, got {action_space}")
        if not isinstance(observation_space, spaces.Dict) or "input_ids" not in observation_space.spaces:
            raise TypeError("HFCausalLMPolicy needs MathDistill's Dict observation with input_ids/attention_mask")
        self._lm_spec = str(model)
        self._lm_conditioned = conditioning
        added = [k for k in observation_space.spaces if k not in ("input_ids", "attention_mask")]
        if conditioning and len(added) != 1:
            raise KeyError(f"conditioning=True needs one observation entry added by a constraint rule (e.g. "
                           f"Sauté's budget state), got {added}")
        self._condition_key = added[0] if conditioning else None
        self._lm_lora = lora
        kwargs.setdefault("features_extractor_class", CombinedExtractor)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        self.llm = LLMPolicy(self._lm_spec, value_head=True, conditioning=self._lm_conditioned, device="cpu",
                             lora=self._lm_lora)
        if self.llm.vocab_size != self.action_space.n:
            raise ValueError(f"model vocabulary ({self.llm.vocab_size}) != env action space ({self.action_space.n})")
        self.action_dist = CategoricalDistribution(int(self.action_space.n))
        params = [p for p in self.llm.parameters() if p.requires_grad]
        self.optimizer = self.optimizer_class(params, lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(model=self._lm_spec, conditioning=self._lm_conditioned, lora=self._lm_lora)
        return data

    def _heads(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Next-token logits ``[B, V]`` and values ``[B]`` at the last filled position of each observation."""
        ids = obs["input_ids"].long()
        mask = obs["attention_mask"].long()
        # observations are right-padded to max_prompt_tokens + max_new_tokens: columns past the longest sequence of
        # the batch are padding in every row and, under causal attention, change no logit. Dropping them makes a
        # forward cost the tokens there are, not the observation's full width (~4x on the shipped task).
        width = max(1, int(mask.sum(-1).max()))
        ids, mask = ids[:, :width], mask[:, :width]
        last = (mask.sum(-1) - 1).clamp(min=0)
        condition = None
        if self._condition_key is not None:
            condition = obs[self._condition_key].float().view(-1, 1).expand_as(ids)
        hf = self.llm.hf_model
        with self.llm.autocast():
            emb = self.llm.input_embeddings(ids, condition)
            pos = torch.arange(ids.shape[1], device=ids.device)[None].expand_as(ids)
            # LoRA layers are injected in place, so the base model of hf_model carries them too
            out = hf.base_model(inputs_embeds=emb, attention_mask=mask, position_ids=pos, use_cache=False)
            hidden = out.last_hidden_state
        h = hidden[torch.arange(ids.shape[0], device=ids.device), last]
        logits = hf.get_output_embeddings()(h).float()
        assert self.llm.value_head is not None
        values = self.llm.value_head(h.float())
        return logits, values

    def forward(self, obs: Any, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample actions; return ``(actions, values, log_prob)`` as SB3 expects."""
        logits, values = self._heads(obs)
        dist = self.action_dist.proba_distribution(action_logits=logits)
        actions = dist.get_actions(deterministic=deterministic)
        return actions, values, dist.log_prob(actions)

    def evaluate_actions(self, obs: Any, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(values, log_prob, entropy)`` of ``actions``."""
        logits, values = self._heads(obs)
        dist = self.action_dist.proba_distribution(action_logits=logits)
        return values, dist.log_prob(actions), dist.entropy()

    def get_distribution(self, obs: Any) -> CategoricalDistribution:
        """The next-token distribution."""
        logits, _ = self._heads(obs)
        return self.action_dist.proba_distribution(action_logits=logits)

    def predict_values(self, obs: Any) -> torch.Tensor:
        """Value estimates ``[B, 1]``."""
        return self._heads(obs)[1]
