"""The training engine: the LLM policy (``policy``), sampling (``sampling``, ``static_decode``), what a constraint
rule adds to the policy's input (``conditioning``), rollouts scored by the env (``rollout``), the minibatch loop of
an update (``minibatch``), data parallelism (``distributed``, ``data_parallel``), devices (``device``) and looking
inside a wrapper stack (``env_stack``).
"""
