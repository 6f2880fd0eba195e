"""Comparing methods under one protocol: the runs of each phase and the choice on validation (``plan``), running them
(``compare``), the records they leave (``records``), the statistics (``stats``), the report and its plots
(``report``, ``plots``), and an outside algorithm under the same protocol (``bench``).
"""
