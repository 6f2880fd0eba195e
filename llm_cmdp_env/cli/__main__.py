"""``python -m llm_cmdp_env.cli`` (also what ``torchrun -m llm_cmdp_env.cli train ...`` runs)."""

import sys

from llm_cmdp_env.cli import main

sys.exit(main())
