"""Next-token log-probabilities of the teacher (and the student): for whole sequences in one forward and
incrementally with a KV cache (``logprobs``, ``kv_cache``), for N rows at once (``batched``), on a fixed-size cache
(``static``, ``cuda_graph``), and the names of the decode modes (``decode_modes``).
"""
