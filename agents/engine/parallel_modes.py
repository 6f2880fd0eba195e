"""The ways a data-parallel run spreads the student over its ranks (light: no torch, so the command line can list
them): ``"ddp"`` keeps a full copy per rank, ``"fsdp"`` shards it (:mod:`llm_cmdp_agents.engine.data_parallel`)."""

__all__ = ["PARALLEL"]

PARALLEL = ("ddp", "fsdp")
