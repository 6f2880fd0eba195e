"""The agent's LLM policy inside other libraries: stable-baselines3 (``sb3_policy``) and OmniSafe (``omnisafe_actor``).
"""
