"""The env inside other libraries: TRL reward functions (``trl_rewards``) and an OmniSafe CMDP (``omnisafe_env``).
"""
