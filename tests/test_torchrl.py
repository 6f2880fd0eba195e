"""torchrl reads the env as its users do: ``GymEnv("MathDistill-v0")`` with the cost read through an info-dict reader
passes ``check_env_specs``, alone and in a ``ParallelEnv``, and the costs it reads are the env's ``info["cost"]``
(a NumPy float64 scalar). Skipped when torchrl is not installed (``pip install -e ".[torchrl]"``)."""

from __future__ import annotations

import numpy as np
import pytest

torchrl = pytest.importorskip("torchrl", reason='torchrl not installed (pip install -e ".[torchrl]")')
import gymnasium as gym  # noqa: E402
import torch  # noqa: E402
from torchrl.data import Unbounded  # noqa: E402
from torchrl.envs import GymEnv, ParallelEnv, check_env_specs  # noqa: E402
from torchrl.envs.gym_like import default_info_dict_reader  # noqa: E402

import llm_cmdp_env  # noqa: E402,F401  (registers MathDistill-v0)

KW = {"max_new_tokens": 6, "max_prompt_tokens": 160}
COST = {"cost": Unbounded(shape=(), dtype=torch.float64)}  # info["cost"] is a float64 scalar


def make_env():
    """The env as docs/interop.md builds it for torchrl: its cost read from ``info["cost"]`` as a float64."""

    env = GymEnv("MathDistill-v0", **KW)
    env.set_info_dict_reader(default_info_dict_reader(["cost"], spec=COST))
    return env


def test_the_cost_is_a_numpy_float64_scalar():
    env = gym.make("MathDistill-v0", **KW)
    env.reset(seed=0)
    _, _, _, _, info = env.step(5)
    assert type(info["cost"]) is np.float64 and isinstance(info["cost"], float)


class _Recorded(gym.Wrapper):
    """Keeps every ``info["cost"]`` the env reports."""

    def __init__(self, env):
        super().__init__(env)
        self.costs = []

    def step(self, action):
        out = self.env.step(action)
        self.costs.append(out[4]["cost"])
        return out


def test_torchrl_reads_the_envs_own_costs():
    check_env_specs(make_env(), seed=0)
    from torchrl.envs import GymWrapper

    recorded = _Recorded(gym.make("MathDistill-v0", **KW))
    env = GymWrapper(recorded)
    env.set_info_dict_reader(default_info_dict_reader(["cost"], spec=COST))
    td = env.rollout(2 * KW["max_new_tokens"], break_when_any_done=False)  # two episodes, autoreset between
    assert td["next", "cost"].tolist() == recorded.costs  # every step's cost, exactly


def test_torchrl_runs_it_in_a_parallel_env():
    penv = ParallelEnv(2, make_env)
    try:
        check_env_specs(penv, seed=0)
        td = penv.rollout(3)
        assert td["next", "cost"].shape == (2, 3) and td["next", "cost"].dtype == torch.float64
        assert bool((td["next", "cost"] > 0).all())  # teacher NLL: every token costs something
    finally:
        penv.close()
