"""Models: loading a Hugging Face causal LM as teacher or student and checking their vocabularies (``loading``),
turning a question into prompt ids (``prompts``), shims over transformers API renames (``hf_compat``).
"""
