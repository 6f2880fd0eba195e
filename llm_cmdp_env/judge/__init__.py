"""The task reward's judge: the final answer of a completion and its equivalence with the reference (``verify``),
with math-verify run in killable worker processes (``_worker``).
"""
