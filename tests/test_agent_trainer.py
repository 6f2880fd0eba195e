"""The PPO/GRPO trainer over the fast path: it learns an easy reward, resumes exactly, and feeds the learned
multiplier from its episodes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from llm_cmdp_agents.algos.registry import get_algorithm
from llm_cmdp_agents.engine.policy import LLMPolicy
from llm_cmdp_agents.run.checkpoint import read_checkpoint
from llm_cmdp_agents.run.trainer import TrainConfig, Trainer
from llm_cmdp_env.replay.fast_path import replay
from llm_cmdp_env.wrappers import LearnedLagrangianWrapper
from tests.test_agent_helpers import LowTokenReward, tiny_env

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_a_few_updates_raise_the_reward_on_an_easy_setting(tiny_dir, tiny_env_kwargs, algo):
    env = LowTokenReward(tiny_env(tiny_env_kwargs), cut=200)
    critic = get_algorithm(algo).value_head
    policy = LLMPolicy(str(tiny_dir / "student"), device="cpu", value_head=critic)
    cfg = TrainConfig(algo=algo, updates=24, prompts_per_update=8 if critic else 4, lr=2e-2, seed=0)
    hist = Trainer(env, policy, cfg, progress=False).train()
    rewards = np.array([h["reward"] for h in hist])
    assert np.isfinite([h["policy_loss"] for h in hist]).all()
    # the return is the count of low-id tokens (max 12); a random student starts near 6
    assert rewards[-4:].mean() > rewards[:4].mean() + 1.5, rewards


def test_rollout_rewards_are_exactly_the_wrapper_stack(tiny_dir, tiny_env_kwargs):
    env = tiny_env(tiny_env_kwargs, "budget", budget=70.0)
    policy = LLMPolicy(str(tiny_dir / "student"), device="cpu")
    trainer = Trainer(env, policy, TrainConfig(prompts_per_update=4), progress=False)
    ro = trainer.collect()
    # stepping a fresh copy of the same stack token by token gives the same per-token rewards and costs
    ref = tiny_env(tiny_env_kwargs, "budget", budget=70.0)
    for ep, prompt, comp, r, c in zip(ro.episodes, ro.prompts, ro.completions, ro.rewards, ro.costs):
        obs, _ = ref.reset(options={"problem": ep.problem})
        assert list(obs["input_ids"][: len(prompt)]) == prompt
        rs, cs = [], []
        for tok in comp:
            _, rew, term, trunc, info = ref.step(tok)
            rs.append(rew)
            cs.append(info["cost"])
        assert term or trunc
        np.testing.assert_allclose(r, rs, atol=1e-5)
        np.testing.assert_allclose(c, cs, atol=1e-4)


def _make(tiny_dir, tiny_env_kwargs, algo):
    env = tiny_env(tiny_env_kwargs, "learned-lagrangian", budget=60.0, lr=0.01, update_every=4)
    critic = get_algorithm(algo).value_head
    policy = LLMPolicy(str(tiny_dir / "student"), device="cpu", value_head=critic)
    cfg = TrainConfig(algo=algo, updates=3, prompts_per_update=4 if critic else 2, group_size=None,
                      lr=1e-2, seed=7, minibatch_size=2 if critic else 4, checkpoint_every=0)
    return env, policy, cfg


@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_resume_continues_exactly(tiny_dir, tiny_env_kwargs, tmp_path, algo):
    env, policy, cfg = _make(tiny_dir, tiny_env_kwargs, algo)
    straight = Trainer(env, policy, cfg, progress=False)
    straight.train(3)

    env1, policy1, cfg1 = _make(tiny_dir, tiny_env_kwargs, algo)
    first = Trainer(env1, policy1, cfg1, run_dir=tmp_path / "run", progress=False, tensorboard=False)
    first.train(2)
    ckpt = tmp_path / "run" / "checkpoints" / "latest.pt"
    assert ckpt.is_file()

    env2, policy2, cfg2 = _make(tiny_dir, tiny_env_kwargs, algo)
    second = Trainer(env2, policy2, cfg2, run_dir=tmp_path / "run", progress=False, tensorboard=False)
    second.load(ckpt)
    assert second.update_idx == 2
    second.train(3)

    for (n, a), (_, b) in zip(straight.policy.named_parameters(), second.policy.named_parameters()):
        assert torch.equal(a, b), n
    lam_a = _multiplier(straight.env)
    lam_b = _multiplier(second.env)
    assert lam_a.state_dict() == lam_b.state_dict()
    assert lam_a.num_updates > 0 and lam_a.value > 0  # the multiplier learned from the trainer's episodes
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in straight.history]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in second.history]
    rows = (tmp_path / "run" / "progress.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3


def _multiplier(env: gym.Env):
    layer = env
    while not isinstance(layer, LearnedLagrangianWrapper):
        layer = layer.env
    return layer.multiplier


def test_trainer_rejects_bad_setups(tiny_dir, tiny_env_kwargs):
    env = tiny_env(tiny_env_kwargs)
    no_value = LLMPolicy(str(tiny_dir / "student"), device="cpu", value_head=False)
    with pytest.raises(ValueError, match="value head"):
        Trainer(env, no_value, TrainConfig(algo="ppo"), progress=False)
    with pytest.raises(ValueError, match="group_size"):
        TrainConfig(algo="grpo", group_size=1)
    with pytest.raises(ValueError, match="algo"):
        TrainConfig(algo="sac")
    with pytest.raises(ValueError, match="SauteWrapper"):
        Trainer(env, LLMPolicy(str(tiny_dir / "student"), device="cpu", conditioning=True), progress=False)
    venv = gym.make_vec("MathDistill-v0", num_envs=2, **tiny_env_kwargs)
    with pytest.raises(TypeError, match="single env"):
        Trainer(venv, no_value, TrainConfig(algo="grpo"), progress=False)


def test_saute_training_with_a_budget_conditioned_policy(tiny_dir, tiny_env_kwargs):
    from llm_cmdp_env.envs.math_distill import MathDistillEnv
    from llm_cmdp_env.wrappers import apply_constraint

    # a dense reward under the Sauté cut (episode costs are ~70 here, so z crosses 0 mid-episode)
    env = apply_constraint(LowTokenReward(MathDistillEnv(**tiny_env_kwargs)), "saute", budget=40.0,
                           min_rel_budget=0.5, max_rel_budget=1.5)
    policy = LLMPolicy(str(tiny_dir / "student"), device="cpu", conditioning=True)
    trainer = Trainer(env, policy, TrainConfig(updates=2, prompts_per_update=4, lr=1e-2), progress=False)
    hist = trainer.train()
    assert len(hist) == 2
    assert policy.condition_proj.weight.abs().sum() > 0  # the projection of z received gradient and moved


def test_student_dependent_divergence_uses_attached_logprobs(tiny_dir, tiny_env_kwargs):
    env = tiny_env({**tiny_env_kwargs, "divergence": "reverse_kl"}, "distill")
    policy = LLMPolicy(str(tiny_dir / "student"), device="cpu")
    trainer = Trainer(env, policy, TrainConfig(updates=1, prompts_per_update=3), progress=False)
    ro = trainer.collect()
    # the env got no student model: the costs come from the log-probs the policy attached; compare with an env
    # that runs the same student itself
    ref = tiny_env({**tiny_env_kwargs, "divergence": "reverse_kl", "student": str(tiny_dir / "student")}, "distill")
    ref_eps = replay(ref, [e.problem for e in ro.episodes], ro.completions)
    for ep, c in zip(ref_eps, ro.costs):
        np.testing.assert_allclose(ep.costs, c, atol=1e-4)


class _CtrlCAt(gym.Wrapper):
    """Sends SIGINT to this process at the ``at``-th step (as a Ctrl-C in the terminal would)."""

    def __init__(self, env: gym.Env, at: int) -> None:
        super().__init__(env)
        self.at, self.n = at, 0

    def step(self, action):
        import os
        import signal

        self.n += 1
        if self.n == self.at:
            os.kill(os.getpid(), signal.SIGINT)
        return self.env.step(action)


def test_ctrl_c_finishes_the_update_and_saves_a_checkpoint(tiny_dir, tiny_env_kwargs, tmp_path):
    env = _CtrlCAt(tiny_env(tiny_env_kwargs), at=30)  # during the 2nd update's replay (4 episodes x 12 tokens)
    policy = LLMPolicy(str(tiny_dir / "student"), device="cpu")
    trainer = Trainer(env, policy, TrainConfig(updates=10, prompts_per_update=2, checkpoint_every=0),
                      run_dir=tmp_path / "run", progress=False, tensorboard=False)
    trainer.train()
    assert trainer.interrupted and trainer.update_idx == 2
    assert read_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["update"] == 2


def test_resume_with_other_settings_is_refused(tiny_dir, tiny_env_kwargs, tmp_path):
    env, policy, cfg = _make(tiny_dir, tiny_env_kwargs, "ppo")
    t = Trainer(env, policy, cfg, run_dir=tmp_path / "r", progress=False, tensorboard=False)
    t.train(1)
    env2, policy2, cfg2 = _make(tiny_dir, tiny_env_kwargs, "ppo")
    cfg2.lr = 0.5
    with pytest.raises(ValueError, match="lr"):
        Trainer(env2, policy2, cfg2, progress=False).load(tmp_path / "r" / "checkpoints" / "latest.pt")


def test_a_checkpoint_from_before_a_new_setting_resumes_with_its_default(tiny_dir, tiny_env_kwargs, tmp_path):
    """``parallel`` was added after format 2 checkpoints existed: one without it resumes (as "ddp"), and a run
    written with another ``parallel`` is refused. The edited checkpoint is written in the older layout (digest in a
    ``.sha256`` file beside it), which still loads."""
    import hashlib
    import io

    env, policy, cfg = _make(tiny_dir, tiny_env_kwargs, "ppo")
    t = Trainer(env, policy, cfg, run_dir=tmp_path / "r", progress=False, tensorboard=False)
    t.train(1)
    path = tmp_path / "r" / "checkpoints" / "latest.pt"
    state = read_checkpoint(path)
    del state["config"]["parallel"]
    buf = io.BytesIO()
    torch.save(state, buf)
    path.write_bytes(buf.getvalue())
    path.with_name("latest.pt.sha256").write_text(f"{hashlib.sha256(buf.getvalue()).hexdigest()}  latest.pt\n")
    env2, policy2, cfg2 = _make(tiny_dir, tiny_env_kwargs, "ppo")
    t2 = Trainer(env2, policy2, cfg2, progress=False)
    t2.load(path)
    assert t2.update_idx == 1
    env3, policy3, cfg3 = _make(tiny_dir, tiny_env_kwargs, "ppo")
    cfg3.parallel = "fsdp"
    with pytest.raises(ValueError, match="parallel"):
        Trainer(env3, policy3, cfg3, progress=False).load(path)


def test_parallel_must_be_ddp_or_fsdp():
    with pytest.raises(ValueError, match="parallel must be"):
        TrainConfig(parallel="zero3")


def test_fsdp_refuses_what_it_cannot_shard_before_touching_the_policy(tiny_dir):
    from llm_cmdp_agents.engine.data_parallel import shard_policy
    from llm_cmdp_agents.engine.distributed import World

    policy = LLMPolicy(str(tiny_dir / "student"), value_head=False, device="cpu", decode="static")
    with pytest.raises(ValueError, match="eager decoder"):
        shard_policy(policy, World(rank=0, size=2))
    assert policy.sharding is None
