"""One training run: its settings (``config``), building its env and policy (``build``), the trainer, checkpoints,
the run log and the run folder's lock (``log``, ``lock``), evaluation, the curves (``plots``) and the run folder
itself (``folder``).
"""
