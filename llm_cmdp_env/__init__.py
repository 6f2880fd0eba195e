"""llm-cmdp-env: LLM distillation as a constrained MDP, as Gymnasium environments.

``import llm_cmdp_env`` registers ``MathDistill-v0`` (cheaply: models load only in ``gym.make``).
"""

from gymnasium.envs.registration import register, registry

__version__ = "0.1.0"

ENV_ID = "MathDistill-v0"

if ENV_ID not in registry:
    register(
        id=ENV_ID,
        entry_point="llm_cmdp_env.registration:make_math_distill",
        vector_entry_point="llm_cmdp_env.registration:make_math_distill_vector",
        disable_env_checker=False,
    )


def __getattr__(name: str):
    # Lazy public API, so that importing the package stays light.
    if name == "MathDistillEnv":
        from llm_cmdp_env.envs.math_distill import MathDistillEnv

        return MathDistillEnv
    if name == "TokenAction":
        from llm_cmdp_env.episode.actions import TokenAction

        return TokenAction
    raise AttributeError(f"module 'llm_cmdp_env' has no attribute {name!r}")


__all__ = ["ENV_ID", "MathDistillEnv", "TokenAction", "__version__"]
