"""``python -m llm_cmdp_env.cli`` (also what ``torchrun -m llm_cmdp_env.cli train ...`` runs)."""

from llm_cmdp_env.cli import run

run()
