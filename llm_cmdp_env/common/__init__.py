"""Foundations every layer uses: argument checks (``validation``), helpers serving a scalar and an array alike
(``arrays``), files written whole or not at all (``atomic_io``), graceful Ctrl-C (``interrupts``), CPU thread counts
(``threads``) and Gymnasium's vector-info conventions (``vector_info``).
"""
