"""Trainer math checked by hand: GAE, GRPO group advantages, the PPO clipped surrogate, nucleus filtering."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from llm_cmdp_agents.algos.grpo import group_advantages
from llm_cmdp_agents.algos.losses import clipped_policy_loss, masked_mean, value_loss
from llm_cmdp_agents.algos.ppo import gae
from llm_cmdp_agents.engine.sampling import top_p_filter


def test_gae_by_hand():
    r = np.array([0.0, 0.0, 1.0])
    v = np.array([0.5, 0.25, 0.75])
    gamma, lam = 0.9, 0.5
    d2 = 1.0 - 0.75                       # terminal: V(s_3) = 0
    d1 = 0.0 + 0.9 * 0.75 - 0.25
    d0 = 0.0 + 0.9 * 0.25 - 0.5
    a2 = d2
    a1 = d1 + gamma * lam * a2
    a0 = d0 + gamma * lam * a1
    adv, ret = gae(r, v, gamma, lam)
    np.testing.assert_allclose(adv, [a0, a1, a2])
    np.testing.assert_allclose(ret, np.array([a0, a1, a2]) + v)


def test_gae_lambda_one_gamma_one_is_return_to_go_minus_value():
    r = np.array([1.0, -2.0, 3.0, 0.5])
    v = np.array([0.1, 0.2, 0.3, 0.4])
    adv, ret = gae(r, v, 1.0, 1.0)
    np.testing.assert_allclose(ret, [2.5, 1.5, 3.5, 0.5])
    np.testing.assert_allclose(adv, ret - v)


def test_group_advantages_by_hand():
    returns = np.array([1.0, 0.0, 0.0, 1.0, 5.0, 5.0, 2.0, 4.0])
    groups = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    a = group_advantages(returns, groups, eps=0.0 + 1e-12)
    # group 0: mean 0.5, population std 0.5 -> +-1
    np.testing.assert_allclose(a[:4], [1, -1, -1, 1], atol=1e-9)
    # group 1: all equal -> no signal
    np.testing.assert_allclose(a[4:6], [0, 0])
    # group 2: mean 3, std 1
    np.testing.assert_allclose(a[6:], [-1, 1], atol=1e-9)
    np.testing.assert_allclose(group_advantages(returns, groups, scale=False),
                               [0.5, -0.5, -0.5, 0.5, 0, 0, -1, 1])


@pytest.mark.parametrize("lam", [1e-6, 1e-4, 1e-3])
def test_group_std_scaling_erases_the_size_of_a_penalty_in_a_tied_group(lam):
    """Why fixed lambda under GRPO does not approach task-only RL as lam -> 0 (docs/results.md): four
    completions that all solve the problem, with costs 20, 40, 300 and 340, get the same advantages for every
    lam once divided by their std; centred only (Dr. GRPO) they shrink with lam."""
    cost = np.array([20.0, 40.0, 300.0, 340.0])
    groups = np.zeros(4, dtype=int)
    scaled = group_advantages(1.0 - lam * cost, groups)
    centred = -(cost - cost.mean()) / cost.std()
    np.testing.assert_allclose(scaled, centred, rtol=0.02)  # size ~1 whatever lam is (eps = 1e-6 aside)
    np.testing.assert_allclose(group_advantages(1.0 - lam * cost, groups, scale=False), -lam * (cost - cost.mean()))


def test_clipped_policy_loss_by_hand():
    clip = 0.2
    old = torch.log(torch.tensor([[0.5, 0.5, 0.5, 0.5]]))
    new_p = torch.tensor([[0.75, 0.55, 0.25, 0.75]])   # ratios 1.5, 1.1, 0.5, 1.5
    adv = torch.tensor([[1.0, 2.0, -1.0, -1.0]])
    mask = torch.ones(1, 4)
    loss, st = clipped_policy_loss(torch.log(new_p), old, adv, mask, clip)
    # min(r A, clip(r) A): 1.5*1 -> clipped 1.2; 1.1*2 -> 2.2 (inside the clip range);
    # 0.5*-1=-0.5 vs clip 0.8*-1=-0.8 -> -0.8;
    # 1.5*-1=-1.5 vs 1.2*-1=-1.2 -> -1.5 (pessimistic side keeps the unclipped term)
    expected = -np.mean([1.2, 2.2, -0.8, -1.5])
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert st["clip_frac"] == pytest.approx(3 / 4)
    ratios = np.array([1.5, 1.1, 0.5, 1.5])
    assert st["approx_kl"] == pytest.approx(np.mean(ratios - 1 - np.log(ratios)), rel=1e-5)


def test_clipped_loss_gradient_vanishes_when_clipped():
    old = torch.zeros(1, 1)
    logp = torch.tensor([[math.log(1.5)]], requires_grad=True)
    loss, _ = clipped_policy_loss(logp, old, torch.ones(1, 1), torch.ones(1, 1), 0.2)
    loss.backward()
    assert float(logp.grad) == 0.0


def test_masked_means_and_value_loss():
    x = torch.tensor([[1.0, 3.0, 100.0], [2.0, 0.0, 0.0]])
    m = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert float(masked_mean(x, m)) == pytest.approx(2.0)             # (1+3+2)/3
    assert float(masked_mean(x, m, per_sequence=True)) == pytest.approx(2.0)  # mean(2, 2)
    assert float(value_loss(x, torch.zeros_like(x), m)) == pytest.approx(0.5 * (1 + 9 + 4) / 3)


def test_top_p_filter_keeps_the_nucleus():
    p = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    out = top_p_filter(p.log(), 0.8)
    assert torch.isfinite(out[0, :2]).all() and torch.isinf(out[0, 2:]).all()
    out = top_p_filter(p.log(), 0.81)
    assert torch.isfinite(out[0, :3]).all() and torch.isinf(out[0, 3])
    assert torch.isfinite(top_p_filter(p.log(), 0.1)[0, 0])  # the top token always survives
    assert torch.equal(top_p_filter(p.log(), 1.0), p.log())
