"""OmniSafe interop: the CMDP adapter returns the env's own numbers, the token codec is exact and strict, and
OmniSafe's PPOLag / PPOSaute train the shipped student through it (skipped when OmniSafe is not installed)."""

from __future__ import annotations

import csv
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

ose = pytest.importorskip(
    "llm_cmdp_env.interop.omnisafe_env",
    reason='OmniSafe not installed (pip install -e ".[omnisafe]" && pip install --no-deps omnisafe==0.5.0)')
from llm_cmdp_agents.interop.omnisafe_actor import CategoricalLMActor, make_agent  # noqa: E402
from llm_cmdp_env.wrappers import SafetyGymnasiumStepWrapper  # noqa: E402

ENV_KW = {"max_new_tokens": 24, "max_prompt_tokens": 160}


def test_token_codec_round_trips_and_refuses_off_grid_actions():
    v = 575
    toks = torch.arange(v)
    act = ose.token_to_action(toks, v)
    assert act.shape == (v, 1) and float(act.min()) == -1.0 and float(act.max()) == 1.0
    assert torch.equal(ose.action_to_token(act, v), toks)
    with pytest.raises(ValueError, match="not an encoded token id"):
        ose.action_to_token(torch.tensor([[0.5 * 2 / (v - 1) - 1]]), v)  # half-way between tokens 0 and 1
    for bad in ([[1.5]], [[float("nan")]]):
        with pytest.raises(ValueError, match="not an encoded token id"):
            ose.action_to_token(torch.tensor(bad), v)
    with pytest.raises(ValueError, match="trailing dimension"):
        ose.action_to_token(torch.zeros(3, 2), v)
    with pytest.raises(ValueError, match="integer ids"):
        ose.token_to_action(torch.tensor([v]), v)


def test_cmdp_returns_the_gymnasium_envs_numbers():
    cmdp = ose.MathDistillCMDP(ose.ENV_ID, **ENV_KW)
    ref = SafetyGymnasiumStepWrapper(gym.make("MathDistill-v0", **ENV_KW))
    rng = np.random.default_rng(0)
    for ep in range(3):
        cmdp.set_seed(ep)
        obs, _ = cmdp.reset()
        ref_obs, _ = ref.reset(seed=ep)
        ids, mask = ose.obs_to_ids(obs)
        assert torch.equal(mask, torch.as_tensor(ref_obs["attention_mask"]))
        assert torch.equal(ids[mask.bool()], torch.as_tensor(ref_obs["input_ids"])[mask.bool()])
        done = False
        while not done:
            tok = int(rng.integers(cmdp.vocab_size))
            obs, r, c, term, trunc, info = cmdp.step(ose.token_to_action(torch.tensor(tok), cmdp.vocab_size))
            _, r2, c2, term2, trunc2, info2 = ref.step(tok)
            assert isinstance(c, torch.Tensor) and c.dtype == torch.float32
            assert float(r) == pytest.approx(r2) and float(c) == pytest.approx(c2, rel=1e-6)
            assert (bool(term), bool(trunc)) == (term2, trunc2) and info["cost"] == info2["cost"]
            done = bool(term or trunc)


def test_cmdp_refuses_bad_settings_and_gaussian_style_actions():
    with pytest.raises(ValueError, match="num_envs=1"):
        ose.MathDistillCMDP(ose.ENV_ID, num_envs=2, **ENV_KW)
    with pytest.raises(ValueError, match="constraint"):
        ose.MathDistillCMDP(ose.ENV_ID, constraint="budget", budget=5.0, **ENV_KW)
    cmdp = ose.MathDistillCMDP(ose.ENV_ID, **ENV_KW)
    cmdp.reset()
    with pytest.raises(ValueError, match="Gaussian actors"):
        cmdp.step(torch.tensor([0.1234]))
    with pytest.raises(ValueError, match="on-policy"):
        make_agent("SACLag", {})
    with pytest.raises(ValueError, match="actor_type"):
        make_agent("PPOLag", {"model_cfgs": {"actor_type": "gaussian_learning"}})


def test_actor_log_prob_is_the_lm_next_token_log_prob():
    cmdp = ose.MathDistillCMDP(ose.ENV_ID, **ENV_KW)
    actor = CategoricalLMActor(cmdp.observation_space, cmdp.action_space)
    obs, _ = cmdp.reset()
    batch = torch.stack([obs, obs])
    act = actor.predict(batch)
    lp = actor.log_prob(act)
    ids, mask = ose.obs_to_ids(obs)
    n = int(mask.sum())
    with torch.no_grad():
        logits = actor.lm.hf_model(input_ids=ids[None, :n]).logits[0, -1]
    want = torch.log_softmax(logits.float(), -1)[ose.action_to_token(act, cmdp.vocab_size)]
    assert lp.shape == (2,) and torch.allclose(lp, want, atol=1e-5)


def _progress(agent) -> list[dict]:
    with open(Path(agent.agent.logger.log_dir) / "progress.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("algo", ["PPOLag", "PPOSaute"])
def test_omnisafe_trains_the_student_on_the_envs_own_costs(algo, tmp_path):
    """OmniSafe's figures are the env's: each epoch's ``Metrics/EpCost`` / ``EpLen`` is the mean over OmniSafe's
    window of the episodes' summed ``info["cost"]`` / lengths as the env reported them (the CMDP's episode log),
    and PPOLag's multiplier moves the way the constraint asks (budget 0: every episode of positive cost violates it,
    so λ rises at every update). Holds by construction, whatever the sampled tokens."""
    import json

    torch.manual_seed(0)
    budget, steps_per_epoch = 0.0, 64
    window = 50  # OmniSafe 0.5.0's PolicyGradient._init_log: EpRet, EpCost, EpLen are means over the last 50 episodes
    log = tmp_path / "episodes.jsonl"
    cfgs = {
        "seed": 0,
        "train_cfgs": {"device": "cpu", "torch_threads": 1, "vector_env_nums": 1, "parallel": 1, "total_steps": 128},
        "algo_cfgs": {"steps_per_epoch": steps_per_epoch, "update_iters": 1, "batch_size": 32, "obs_normalize": False},
        "logger_cfgs": {"use_wandb": False, "use_tensorboard": False, "save_model_freq": 10**6,
                        "log_dir": str(tmp_path)},
        "model_cfgs": {"actor": {"lr": 1e-5}},
        "env_cfgs": {**ENV_KW, "episode_log": str(log)},
    }
    if algo.endswith("Saute"):
        cfgs["algo_cfgs"].update(safety_budget=0.5, max_ep_len=24, saute_gamma=0.999, unsafe_reward=-0.1)
    else:
        cfgs["lagrange_cfgs"] = {"cost_limit": budget, "lagrangian_multiplier_init": 0.001}
    from llm_cmdp_env.models.loading import load_model

    student = load_model("zoo:student")  # handed in as is: the actor trains this very model
    before = [p.detach().clone() for p in student.parameters()]
    agent = make_agent(algo, cfgs, model=student)
    agent.learn()
    rows = _progress(agent)
    episodes = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == 2 and len(episodes) >= 4
    for epoch, row in enumerate(rows):
        ended = [e for e in episodes if e["steps"] <= (epoch + 1) * steps_per_epoch][-window:]
        assert float(row["Metrics/EpCost"]) == pytest.approx(np.mean([e["cost"] for e in ended]), rel=1e-5)
        assert float(row["Metrics/EpLen"]) == pytest.approx(np.mean([e["length"] for e in ended]))
        assert float(row["Metrics/EpRet"]) == pytest.approx(np.mean([e["return"] for e in ended]), abs=1e-6)
    assert any(not torch.equal(a, b) for a, b in zip(student.parameters(), before))  # the LM itself was updated
    if algo.endswith("Lag"):
        lam = [0.001] + [float(r["Metrics/LagrangeMultiplier"]) for r in rows]
        assert all(float(r["Metrics/EpCost"]) > budget for r in rows)
        assert all(b > a for a, b in zip(lam, lam[1:]))  # each update raises it: the constraint is violated
