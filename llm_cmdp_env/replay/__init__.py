"""Whole completions stepped through an env's wrapper stack with one teacher forward per batch (``fast_path``),
and every episode's step at time t run side by side on arrays (``side_by_side``).
"""
