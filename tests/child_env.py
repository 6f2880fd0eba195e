"""The environment for a child Python process of a test: this checkout first on its path, the parent's own
PYTHONPATH kept (a machine where the dependencies live on PYTHONPATH, as on the GPU machine, needs it), offline."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child_env(**extra: str) -> dict[str, str]:
    """``os.environ`` with ``HF_HUB_OFFLINE=1``, the checkout prepended to ``PYTHONPATH``, and ``extra``."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": path, **extra}
