"""The episode rules, written once for a batch of ``n`` episodes (``rules``: start, per-token costs, end, judge,
batched scoring) and the action that may carry the acting policy's log-probs (``actions``).
"""
