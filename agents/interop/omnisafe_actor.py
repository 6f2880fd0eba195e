"""A causal LM as an OmniSafe actor: a categorical policy over the vocabulary for OmniSafe's own algorithms.

OmniSafe 0.5.0 builds only Gaussian/MLP actors (``ActorBuilder``) and its on-policy buffer and ``ActionScale``
wrapper accept only ``Box`` actions, so a token policy enters it as :class:`CategoricalLMActor` over the action
encoding of :mod:`llm_cmdp_env.interop.omnisafe_env` (token ``k`` <-> ``2 k / (vocab - 1) - 1``). :func:`make_agent`
builds
any of OmniSafe's on-policy algorithms with it::

    import llm_cmdp_env.interop.omnisafe_env  # first: registers the env (and lets omnisafe import, see that module)
    agent = make_agent("PPOLag", custom_cfgs=cfgs, model="zoo:student")
    agent.learn()

The distribution has OmniSafe's Gaussian shape conventions (batch ``[B, 1]``, ``log_prob`` summed over the last
dim), so PPO's KL early stop and CPO's Fisher-vector products see per-sample KLs as for its own actors. The
critics stay OmniSafe's MLPs over the observation (token ids; a weak value baseline, see docs/interop.md).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch
from omnisafe.models.actor import actor_builder as _actor_builder
from omnisafe.models.base import Actor
from torch.distributions import Categorical

from llm_cmdp_agents.engine.policy import LLMPolicy
from llm_cmdp_env.interop.omnisafe_env import ENV_ID, action_to_token, obs_to_ids, token_to_action

__all__ = ["ACTOR_TYPE", "CategoricalLMActor", "lm_actor", "make_agent"]

#: ``model_cfgs.actor_type`` that :func:`lm_actor` builds.
ACTOR_TYPE = "categorical_lm"


class CategoricalLMActor(Actor):
    """Next-token distribution of a causal LM, read from MathDistill's OmniSafe observation.

    Parameters
    ----------
    obs_space, act_space
        The OmniSafe spaces of :class:`~llm_cmdp_env.interop.omnisafe_env.MathDistillCMDP` (1-D token-id ``Box``, 1-D
        action ``Box``).
    model : str, path or PreTrainedModel
        The LM (``"zoo:student"``, a folder, a Hugging Face id or a loaded model); its vocabulary must be the env's.
    temperature : float
        Sampling and training temperature (> 0, finite).
    attn_implementation : str, optional
        Set the LM's attention kernel (``"eager"`` for OmniSafe's second-order methods: CPO/TRPO's
        Fisher-vector products differentiate twice, which PyTorch's fused CPU attention does not support).
    extra_dims : int
        Trailing observation entries after the token ids that the actor ignores: 1 for OmniSafe's Sauté and Simmer
        algorithms, whose adapter appends the safety state z (the policy then acts without the remaining
        budget, as in the paper's method; the critics see it).
    **kwargs
        OmniSafe's actor arguments (hidden sizes, activation, init): unused by an LM.
    """

    def __init__(self, obs_space: Any, act_space: Any, model: str | os.PathLike | Any = "zoo:student",
                 temperature: float = 1.0, attn_implementation: str | None = None, extra_dims: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(obs_space, act_space, kwargs.pop("hidden_sizes", []), **kwargs)
        if self._act_dim != 1:
            raise ValueError(f"CategoricalLMActor needs the 1-dim encoded-token action Box, got {act_space}")
        t = float(temperature)
        if not (t > 0 and t < float("inf")):
            raise ValueError(f"temperature must be finite and > 0, got {temperature!r}")
        self.temperature = t
        if isinstance(extra_dims, bool) or not isinstance(extra_dims, int) or not 0 <= extra_dims < self._obs_dim:
            raise ValueError(f"extra_dims must be an int in [0, {self._obs_dim}), got {extra_dims!r}")
        self.token_dims = self._obs_dim - extra_dims
        self.lm = LLMPolicy(model, value_head=False, device="cpu")
        if attn_implementation is not None:
            self.lm.hf_model.set_attn_implementation(attn_implementation)
        self.vocab_size = self.lm.vocab_size
        high = float(obs_space.high[: self.token_dims].max())
        if high < float("inf") and int(round(high)) != self.vocab_size - 1:  # Sauté's adapter drops the bounds
            raise ValueError(f"model vocabulary ({self.vocab_size}) != the env's ({int(round(high)) + 1})")

    def _distribution(self, obs: torch.Tensor) -> Categorical:
        single = obs.ndim == 1
        ids, mask = obs_to_ids((obs.reshape(1, -1) if single else obs)[:, : self.token_dims])
        width = max(1, int(mask.sum(-1).max()))  # columns past the longest sequence are padding in every row
        ids, mask = ids[:, :width].to(self.lm.device), mask[:, :width].to(self.lm.device)
        last = (mask.sum(-1) - 1).clamp(min=0)
        with self.lm.autocast():
            logits = self.lm.hf_model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        logits = logits[torch.arange(ids.shape[0], device=ids.device), last].float() / self.temperature
        logits = logits[:, None, :]  # batch [B, 1]: OmniSafe's one action dimension
        return Categorical(logits=logits[0] if single else logits)

    def predict(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """An encoded token (``[..., 1]``): sampled, or the most likely one when ``deterministic``."""
        self._current_dist = self._distribution(obs)
        self._after_inference = True
        tok = self._current_dist.probs.argmax(-1) if deterministic else self._current_dist.sample()
        return token_to_action(tok[..., 0], self.vocab_size)

    def forward(self, obs: torch.Tensor) -> Categorical:
        """The next-token distribution (kept for :meth:`log_prob`)."""
        self._current_dist = self._distribution(obs)
        self._after_inference = True
        return self._current_dist

    def log_prob(self, act: torch.Tensor) -> torch.Tensor:
        """Log-probability of encoded tokens under the last distribution (``[B]``, as OmniSafe's actors)."""
        assert self._after_inference, "log_prob() should be called after predict() or forward()"
        self._after_inference = False
        tokens = action_to_token(act, self.vocab_size).to(self.lm.device).unsqueeze(-1)  # [B, 1], as the batch
        return self._current_dist.log_prob(tokens).sum(-1)

    @property
    def std(self) -> float:
        """NaN: a categorical policy has no standard deviation (OmniSafe logs ``Train/PolicyStd``)."""
        return float("nan")

    @std.setter
    def std(self, std: float) -> None:
        raise TypeError("CategoricalLMActor has no std to set (model_cfgs.exploration_noise_anneal must be False)")


@contextlib.contextmanager
def lm_actor(model: str | os.PathLike | Any = "zoo:student", temperature: float = 1.0,
             attn_implementation: str | None = None, extra_dims: int = 0) -> Iterator[None]:
    """While inside, OmniSafe's ``ActorBuilder`` builds :class:`CategoricalLMActor` for ``actor_type="categorical_lm"``.

    The other actor types build as before; the builder is restored on exit (build the algorithm inside, e.g.
    ``omnisafe.Agent(...)``; training may run outside).
    """
    cls = _actor_builder.ActorBuilder
    original = cls.build_actor

    def build_actor(self: Any, actor_type: str) -> Actor:
        if actor_type == ACTOR_TYPE:
            return CategoricalLMActor(self._obs_space, self._act_space, model=model, temperature=temperature,
                                      attn_implementation=attn_implementation, extra_dims=extra_dims)
        return original(self, actor_type)

    cls.build_actor = build_actor  # type: ignore[method-assign]
    try:
        yield
    finally:
        cls.build_actor = original  # type: ignore[method-assign]


def make_agent(algo: str, custom_cfgs: dict[str, Any] | None = None, model: str | os.PathLike | Any = "zoo:student",
               temperature: float = 1.0, env_id: str = ENV_ID) -> Any:
    """``omnisafe.Agent(algo, env_id, custom_cfgs)`` whose actor is :class:`CategoricalLMActor` over ``model``.

    ``custom_cfgs["env_cfgs"]`` are the env's keyword arguments (for every algorithm, including those whose default
    config has no ``env_cfgs``). Sets ``model_cfgs.actor_type="categorical_lm"`` (any other actor type is refused)
    and registers the
    ``Train/PolicyStd`` log key, which OmniSafe 0.5.0's policy losses always store but register only for its
    Gaussian actor.
    """
    import omnisafe
    from omnisafe.algorithms import ALGORITHMS, registry
    from omnisafe.algorithms.on_policy.base.natural_pg import NaturalPG
    from omnisafe.utils.config import Config

    if algo not in ALGORITHMS["on-policy"]:
        raise ValueError(f"make_agent builds OmniSafe's on-policy algorithms {list(ALGORITHMS['on-policy'])}, "
                         f"got {algo!r}")
    # second-order methods differentiate the KL twice: the fused CPU attention kernel has no double backward
    attn = "eager" if issubclass(registry.get(algo), NaturalPG) else None

    cfgs = dict(custom_cfgs or {})
    model_cfgs = dict(cfgs.get("model_cfgs") or {})
    if model_cfgs.setdefault("actor_type", ACTOR_TYPE) != ACTOR_TYPE:
        raise ValueError(f"make_agent builds actor_type={ACTOR_TYPE!r}, got model_cfgs.actor_type="
                         f"{model_cfgs['actor_type']!r}")
    if model_cfgs.get("exploration_noise_anneal"):
        raise ValueError("model_cfgs.exploration_noise_anneal needs a Gaussian actor; leave it False")
    cfgs["model_cfgs"] = model_cfgs
    env_cfgs = dict(cfgs.pop("env_cfgs", None) or {})

    class _Agent(omnisafe.Agent):
        # many of OmniSafe's default configs (CPO, PCPO, FOCOPS, ...) have no env_cfgs section, so a custom one
        # fails its key check: add it after the check, before the env is built
        def _init_config(self) -> Any:
            config = super()._init_config()
            config.env_cfgs = Config.dict2config(env_cfgs)
            return config

    extra = 1 if algo.endswith("Saute") or "Simmer" in algo else 0  # their adapters append the safety state
    with lm_actor(model, temperature=temperature, attn_implementation=attn, extra_dims=extra):
        agent = _Agent(algo, env_id, custom_cfgs=cfgs)
    agent.agent.logger.register_key("Train/PolicyStd")
    return agent
