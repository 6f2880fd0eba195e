"""A CleanRL-style single-file PPO-Lagrangian that trains the shipped student through Safety-Gymnasium's 6-tuple.

    python examples/cleanrl_ppo_lagrangian.py [--total-steps 512] [--budget 12] [--max-new-tokens 64]

Independent of the project's agent and of OmniSafe: the policy is a plain Hugging Face causal LM (the shipped
``zoo:student`` folder, loaded with ``AutoModelForCausalLM``) whose next-token logits are a categorical policy over
the vocabulary, with two linear heads on its last hidden state (reward value, cost value). The env is
``SafetyGymnasiumStepWrapper(gym.make("MathDistill-v0"))``: ``step -> (obs, reward, cost, terminated, truncated,
info)``, and the cost is read from that tuple only (never from ``info``). Each iteration collects ``num_steps``
env steps (one token each, the whole observation re-encoded per step: no KV cache), computes GAE advantages for
reward and cost, updates the multiplier by dual ascent on the iteration's finished episodes,

    lambda <- max(0, lambda + lambda_lr * (mean episode cost - budget)),

and optimises PPO's clipped surrogate on ``(A_r - lambda A_c) / (1 + lambda)`` plus both value losses.
``train(env, ...)`` is the whole algorithm; ``tests/test_cleanrl_example.py`` runs it on tiny models.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402


@dataclass
class Args:
    """Hyper-parameters (CleanRL's PPO defaults where they make sense for a token-level policy)."""

    total_steps: int = 512
    num_steps: int = 256  # env steps per rollout (one iteration)
    update_epochs: int = 2
    minibatch_size: int = 64
    lr: float = 1e-5
    gamma: float = 1.0
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    max_grad_norm: float = 1.0
    budget: float = 12.0
    lambda_init: float = 0.0
    lambda_lr: float = 0.05
    seed: int = 0


@dataclass
class Result:
    """What :func:`train` saw: every cost it read from the 6-tuple, the finished episodes and one row per iteration."""

    step_costs: list[float] = field(default_factory=list)
    episode_returns: list[float] = field(default_factory=list)
    episode_costs: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)


class LMAgent(nn.Module):
    """Categorical policy over the vocabulary = the causal LM's next-token logits; reward and cost critics =
    linear heads on the same last hidden state. Observations are MathDistill's right-padded
    ``{"input_ids", "attention_mask"}``."""

    def __init__(self, model_path: str) -> None:
        super().__init__()
        self.lm = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        hidden = self.lm.get_output_embeddings().weight.shape[1]
        self.value_r = nn.Linear(hidden, 1)
        self.value_c = nn.Linear(hidden, 1)
        for head in (self.value_r, self.value_c):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def heads(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Next-token logits ``[B, V]``, reward values ``[B]`` and cost values ``[B]`` at each row's last token."""
        width = max(1, int(mask.sum(-1).max()))  # columns past the longest row are padding everywhere
        ids, mask = ids[:, :width], mask[:, :width]
        out = self.lm(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
        rows = torch.arange(ids.shape[0])
        last = (mask.sum(-1) - 1).clamp(min=0)
        h = out.hidden_states[-1][rows, last]
        return out.logits[rows, last].float(), self.value_r(h).squeeze(-1), self.value_c(h).squeeze(-1)


def _obs(obs: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.as_tensor(obs["input_ids"]).long(), torch.as_tensor(obs["attention_mask"]).long()


def _gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, next_value: float, next_done: bool,
         gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """CleanRL's GAE: ``dones[t]`` = the episode ended before step t's observation (so step t starts a new one)."""
    n = len(rewards)
    adv = torch.zeros(n)
    last = 0.0
    for t in reversed(range(n)):
        if t == n - 1:
            nonterminal, nxt = 1.0 - float(next_done), next_value
        else:
            nonterminal, nxt = 1.0 - float(dones[t + 1]), float(values[t + 1])
        delta = float(rewards[t]) + gamma * nxt * nonterminal - float(values[t])
        last = delta + gamma * lam * nonterminal * last
        adv[t] = last
    return adv, adv + values


def train(env: gym.Env, model: str, args: Args | None = None, log: bool = True) -> tuple[LMAgent, float, Result]:
    """Train a PPO-Lagrangian agent on a Safety-Gymnasium 6-tuple ``env`` (Discrete token actions, MathDistill's
    dict observation). Returns ``(agent, lambda, result)``."""
    args = args or Args()
    if args.budget < 0 or args.lambda_lr < 0 or args.lambda_init < 0:
        raise ValueError("budget, lambda_lr and lambda_init must be >= 0")
    if args.num_steps < 1 or args.total_steps < args.num_steps:
        raise ValueError(f"need total_steps >= num_steps >= 1, got {args.total_steps}, {args.num_steps}")
    torch.manual_seed(args.seed)
    agent = LMAgent(model)
    n_vocab = int(env.action_space.n)
    if agent.lm.get_output_embeddings().weight.shape[0] != n_vocab:
        raise ValueError(f"model vocabulary differs from the env's action space ({n_vocab})")
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.lr, eps=1e-5)
    lam = float(args.lambda_init)
    res = Result()

    width = int(env.observation_space["input_ids"].shape[0])
    s = args.num_steps
    buf_ids = torch.zeros(s, width, dtype=torch.long)
    buf_mask = torch.zeros(s, width, dtype=torch.long)
    actions, logprobs = torch.zeros(s, dtype=torch.long), torch.zeros(s)
    rewards, costs, dones = torch.zeros(s), torch.zeros(s), torch.zeros(s)
    values_r, values_c = torch.zeros(s), torch.zeros(s)

    obs, _ = env.reset(seed=args.seed)
    next_done = False
    ep_ret = ep_cost = 0.0
    ep_len = 0
    global_step = 0
    for iteration in range(args.total_steps // s):
        t0 = time.perf_counter()
        n_eps_before = len(res.episode_costs)
        agent.eval()
        for t in range(s):
            ids, mask = _obs(obs)
            buf_ids[t], buf_mask[t] = ids, mask
            dones[t] = float(next_done)
            with torch.no_grad():
                logits, vr, vc = agent.heads(ids[None], mask[None])
                dist = torch.distributions.Categorical(logits=logits)
                action = dist.sample()
            actions[t], logprobs[t] = action, dist.log_prob(action)
            values_r[t], values_c[t] = vr, vc
            result = env.step(int(action))
            if len(result) != 6:
                raise TypeError(f"train() needs a Safety-Gymnasium 6-tuple env, its step returned {len(result)} "
                                "values: wrap it in SafetyGymnasiumStepWrapper")
            obs, reward, cost, terminated, truncated, _info = result
            rewards[t], costs[t] = float(reward), float(cost)
            res.step_costs.append(float(cost))
            ep_ret += float(reward)
            ep_cost += float(cost)
            ep_len += 1
            global_step += 1
            next_done = bool(terminated or truncated)
            if next_done:
                res.episode_returns.append(ep_ret)
                res.episode_costs.append(ep_cost)
                res.episode_lengths.append(ep_len)
                ep_ret = ep_cost = 0.0
                ep_len = 0
                obs, _ = env.reset()
        rollout_s = time.perf_counter() - t0

        with torch.no_grad():
            _, nvr, nvc = agent.heads(*(x[None] for x in _obs(obs)))
        adv_r, ret_r = _gae(rewards, values_r, dones, float(nvr), next_done, args.gamma, args.gae_lambda)
        adv_c, ret_c = _gae(costs, values_c, dones, float(nvc), next_done, args.gamma, args.gae_lambda)

        # dual ascent on the episodes this iteration finished
        new_costs = res.episode_costs[n_eps_before:]
        mean_cost = float(np.mean(new_costs)) if new_costs else float("nan")
        if new_costs:
            lam = max(0.0, lam + args.lambda_lr * (mean_cost - args.budget))

        t1 = time.perf_counter()
        agent.train()
        clipfracs = []
        for _ in range(args.update_epochs):
            for mb in torch.randperm(s).split(args.minibatch_size):
                logits, vr, vc = agent.heads(buf_ids[mb], buf_mask[mb])
                dist = torch.distributions.Categorical(logits=logits)
                ratio = (dist.log_prob(actions[mb]) - logprobs[mb]).exp()
                a_r = adv_r[mb]
                a_c = adv_c[mb]
                if len(mb) > 1:
                    a_r = (a_r - a_r.mean()) / (a_r.std() + 1e-8)
                    a_c = a_c - a_c.mean()
                adv = (a_r - lam * a_c) / (1.0 + lam)
                pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)).mean()
                v_loss = 0.5 * (((vr - ret_r[mb]) ** 2).mean() + ((vc - ret_c[mb]) ** 2).mean())
                loss = pg_loss + args.vf_coef * v_loss - args.ent_coef * dist.entropy().mean()
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()
                clipfracs.append(float(((ratio - 1).abs() > args.clip_coef).float().mean()))
        update_s = time.perf_counter() - t1

        new_rets = res.episode_returns[n_eps_before:]
        row = {"iteration": iteration, "global_step": global_step, "episodes": len(new_costs),
               "ep_return": float(np.mean(new_rets)) if new_rets else float("nan"), "ep_cost": mean_cost,
               "budget": args.budget, "lambda": lam, "pg_loss": pg_loss.item(), "v_loss": v_loss.item(),
               "clipfrac": float(np.mean(clipfracs)), "rollout_s": rollout_s, "update_s": update_s}
        res.history.append(row)
        if log:
            print(f"iter {iteration} step {global_step}: {len(new_costs)} episodes, return {row['ep_return']:.3f}, "
                  f"cost {mean_cost:.2f} (budget {args.budget:g}), lambda {lam:.3f}, "
                  f"rollout {rollout_s:.1f} s, update {update_s:.1f} s", flush=True)
    return agent, lam, res


def bench_algo(make_env, budget: float, seed: int, limit, model: str = "zoo:student", **kwargs) -> object:
    """This algorithm as an ``llm-cmdp bench`` entry (docs/benchmark.md): ``--algo
    examples.cleanrl_ppo_lagrangian:bench_algo``. Trains for ``limit.tokens`` env steps (the protocol's episodes
    times ``max_new_tokens``, an upper bound: shorter episodes mean more of them; the harness records how many)
    and returns the greedy policy ``obs -> token``. ``kwargs`` set :class:`Args` fields."""
    from llm_cmdp_env.models.loading import resolve_model
    from llm_cmdp_env.wrappers import SafetyGymnasiumStepWrapper

    num_steps = min(Args.num_steps, limit.tokens)
    args = Args(**{"num_steps": num_steps, **kwargs, "budget": float(budget), "seed": int(seed),
                   "total_steps": max(num_steps, limit.tokens // num_steps * num_steps)})
    agent, _, _ = train(SafetyGymnasiumStepWrapper(make_env()), resolve_model(model), args, log=False)
    agent.eval()

    @torch.no_grad()
    def act(obs: dict[str, np.ndarray]) -> int:
        ids, mask = _obs(obs)
        return int(agent.heads(ids[None], mask[None])[0][0].argmax())

    return act


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in vars(Args()).items():
        p.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)
    p.add_argument("--max-new-tokens", type=int, default=64, help="episode length limit (default: 64)")
    p.add_argument("--model", default="zoo:student", help="student LM: zoo:student, a folder or a HF id")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    ns = vars(p.parse_args(argv))
    torch.set_num_threads(ns.pop("threads"))
    max_new, model = ns.pop("max_new_tokens"), ns.pop("model")

    import llm_cmdp_env  # noqa: F401  (registers MathDistill-v0)
    from llm_cmdp_env.models.loading import resolve_model
    from llm_cmdp_env.wrappers import SafetyGymnasiumStepWrapper

    env = SafetyGymnasiumStepWrapper(gym.make("MathDistill-v0", divergence="teacher_nll", max_new_tokens=max_new,
                                              max_prompt_tokens=160))
    t0 = time.perf_counter()
    args = Args(**ns)
    _, lam, res = train(env, resolve_model(model), args)
    print(f"{args.total_steps} env steps, {len(res.episode_costs)} episodes in {time.perf_counter() - t0:.1f} s; "
          f"final lambda {lam:.3f}")


if __name__ == "__main__":
    main()
