"""Rules carry their meaning: what the budget means, what a rule adds to the observation and which options it needs
are read from the registry and the rule (never from its name), so a new rule that adds an observation works in
training, stable-baselines3 and the plots with nothing in llm_cmdp_agents changed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from llm_cmdp_env.wrappers import REGISTRY, Constraint, constraint_spec, register_constraint
from llm_cmdp_env.wrappers.constraint import not_, where
from tests.test_agent_helpers import conditioned_problems, tiny_env


@dataclass
class Allowance(Constraint):
    """A rule of this test only: the allowance left, a = 1 - C_t/d, is in the observation; the task reward is kept
    while a > 0, else 0."""

    budget: float
    obs_key: str = "allowance_left"

    state_fields: ClassVar[dict[str, Any]] = {"left": 1.0}
    observed_field: ClassVar[str] = "left"

    def step(self, state, reward, cost, info):
        left = state.left = state.left - cost / self.budget
        return where(left > 0, reward, 0.0), {"allowance": left, "constraint_violated": not_(left > 0)}


@pytest.fixture()
def allowance():
    register_constraint("allowance", Allowance, budget="required", help="allowance left in the observation")
    yield
    REGISTRY.pop("allowance", None)
    from llm_cmdp_env.wrappers.factory import CONSTRAINTS

    CONSTRAINTS.pop("allowance", None)


def test_the_registry_says_what_each_budget_means():
    budget_free = {name for name, spec in REGISTRY.items() if not spec.reads_budget}
    assert budget_free == {"none", "distill", "lagrangian"}  # what agents/experiments/plan.py's BUDGET_FREE spelled out
    assert [n for n, s in REGISTRY.items() if not s.episode_budget] == ["worst-case"]
    assert constraint_spec("worst-case").statistics_budget(0.8) is None
    assert constraint_spec("budget").statistics_budget(3.0) == 3.0
    assert constraint_spec("lagrangian").needs == ("lam",)  # read off the rule's parameters
    assert all(not s.needs for n, s in REGISTRY.items() if n != "lagrangian")
    assert [n for n, s in REGISTRY.items() if s.observation_key] == ["saute"]
    assert constraint_spec("saute").observation_key == "saute_budget"
    assert [n for n, s in REGISTRY.items() if s.learns] == ["learned-lagrangian"]
    assert constraint_spec(None) is REGISTRY["none"]
    with pytest.raises(ValueError, match="unknown constraint 'nope'.*'worst-case'"):
        constraint_spec("nope")


def test_a_new_observing_rule_is_tracked_while_sampling_exactly_as_the_env_reports(allowance, tiny_dir,
                                                                                     tiny_env_kwargs):
    from llm_cmdp_agents.engine.conditioning import conditions_from_episodes
    from llm_cmdp_agents.engine.sampling import sample
    from llm_cmdp_env.replay.fast_path import replay

    env = tiny_env(tiny_env_kwargs, "allowance", budget=30.0)
    assert "allowance_left" in env.observation_space.spaces
    policy, problems, prompts, tracker = conditioned_problems(env, str(tiny_dir / "student"), 3)
    base = env.unwrapped
    z0 = tracker.initial(3)
    assert z0.tolist() == [1.0, 1.0, 1.0]
    s = sample(policy, prompts, base.max_new_tokens, base.eos_ids, base.pad_id, generator=torch.Generator()
               .manual_seed(0), condition0=tracker.start(prompts, z0), condition_step=tracker.step)
    eps = replay(env, problems, s.completions, student_token_logprobs=s.token_logprobs, keep_infos=True)
    budgets = conditions_from_episodes(z0, eps, "allowance_left")
    for b, zs, ep in zip(budgets, s.conditions, eps):
        np.testing.assert_allclose(b.numpy(), zs.numpy(), rtol=1e-4, atol=1e-4)
        assert float(b[1]) == np.float32(ep.infos[0]["allowance"])  # the env's own value, as the policy saw it
    assert any(float(b[-1]) < 1.0 for b in budgets)


def test_a_new_observing_rule_trains_plots_and_runs_under_sb3(allowance, tiny_dir, tmp_path, one_thread):
    from llm_cmdp_agents.run.config import EnvConfig, EvalConfig, PolicyConfig, RunConfig, TrainConfig
    from llm_cmdp_agents.run.folder import train_run

    cfg = RunConfig(EnvConfig(teacher=str(tiny_dir / "teacher"), max_new_tokens=10, max_prompt_tokens=160,
                              constraint="allowance", budget=30.0),
                    PolicyConfig(model=str(tiny_dir / "student"), device="cpu"),
                    TrainConfig(algo="ppo", updates=2, prompts_per_update=2, minibatch_size=2),
                    EvalConfig(n=2, batch_size=2))
    res = train_run(tmp_path / "run", cfg, progress=False, out=lambda m: None)
    assert res["status"] == "finished" and res["after"]["constraint_satisfaction"] is not None
    agent = json.loads((tmp_path / "run" / "final" / "agent_config.json").read_text())
    assert agent["conditioning"] is True  # the rule adds an observation: the policy reads it by default
    progress = (tmp_path / "run" / "progress.csv").read_text().splitlines()
    assert progress[0].split(",").count("budget") == 1 and progress[1].split(",")[progress[0].split(",").index(
        "budget")] == "30.0"  # the statistics' budget, read from the stack
    assert (tmp_path / "run" / "curves.png").is_file()

    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    from llm_cmdp_agents.interop.sb3_policy import HFCausalLMPolicy

    env = tiny_env({"teacher": str(tiny_dir / "teacher"), "max_new_tokens": 12, "max_prompt_tokens": 160},
                   "allowance", budget=30.0, obs_key="left_over")  # a renamed key is found in the space
    model = PPO(HFCausalLMPolicy, env, n_steps=16, batch_size=8, n_epochs=1, seed=0, device="cpu",
                policy_kwargs={"model": str(tiny_dir / "student"), "conditioning": True})
    obs, _ = env.reset(seed=1)
    o = {k: torch.as_tensor(v)[None] for k, v in obs.items()}
    low = {**o, "left_over": o["left_over"] * 0 - 1.0}
    with torch.no_grad():
        model.policy.llm.condition_proj.weight.normal_(0, 1.0)
        probs = [model.policy.get_distribution(x).distribution.probs for x in (o, low)]
    assert not torch.allclose(*probs)  # the policy reads the rule's observation entry
    model.learn(16)
    assert np.isfinite(model.logger.name_to_value["train/loss"])
