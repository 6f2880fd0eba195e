"""LLM policy agents that train a student in MathDistill environments (import name ``llm_cmdp_agents``)."""
