"""Training algorithms, one module each, found by name in the registry (``registry``): PPO (``ppo``), GRPO
(``grpo``) and the paper's distillation baselines GKD (``gkd``) and MiniLLM (``minillm``); the settings they share
(``config``) and the loss terms they share (``losses``, ``distill``). Algorithms of other installed packages join
through the ``llm_cmdp_agents.algorithms`` entry point group (each entry point names a module that registers one).

Light to import (no torch): an algorithm's module holds its config at the top and imports torch inside its update.
"""

import warnings
from importlib.metadata import entry_points

# isort: off
# the built-in algorithms, registered in the order ``--help`` lists them
from llm_cmdp_agents.algos import ppo, grpo, gkd, minillm  # noqa: F401
# isort: on
from llm_cmdp_agents.algos.config import TrainConfig
from llm_cmdp_agents.algos.gkd import GKDConfig
from llm_cmdp_agents.algos.grpo import GRPOConfig
from llm_cmdp_agents.algos.minillm import MiniLLMConfig
from llm_cmdp_agents.algos.ppo import PPOConfig
from llm_cmdp_agents.algos.registry import ALGORITHMS, AlgorithmSpec, get_algorithm, register_algorithm

#: The entry point group of packages that add algorithms: ``name = "package.module"`` (importing it registers).
ALGORITHMS_GROUP = "llm_cmdp_agents.algorithms"

for _ep in entry_points(group=ALGORITHMS_GROUP):
    try:
        _ep.load()
    except Exception as _e:  # a broken plugin must not break the built-in algorithms
        warnings.warn(f"llm_cmdp_agents: the algorithm of {_ep.value} is unavailable ({_e})", stacklevel=2)

__all__ = ["ALGORITHMS", "ALGORITHMS_GROUP", "AlgorithmSpec", "GKDConfig", "GRPOConfig", "MiniLLMConfig", "PPOConfig",
           "TrainConfig", "get_algorithm", "register_algorithm"]
