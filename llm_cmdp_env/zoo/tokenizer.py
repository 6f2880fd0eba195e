"""Build the small byte-level BPE tokenizer shared by the shipped teacher and student.

Digits are always single tokens (``Digits(individual_digits=True)`` runs before the byte-level split), so
the models see numbers digit by digit and arithmetic is learnable by a tiny transformer. The byte-level
alphabet is always included, so any UTF-8 text (e.g. real GSM8K questions) can be encoded, just in more
tokens than the procedural text the merges were learnt on.
"""

from __future__ import annotations

from collections.abc import Iterator

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from llm_cmdp_env.tasks.arithmetic import PLAIN_PROMPT_TEMPLATE, ArithmeticTask

__all__ = ["EOS_TOKEN", "PAD_TOKEN", "build_tokenizer"]

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"


def _corpus(n_texts: int) -> Iterator[str]:
    """Yield prompt + solution texts of the procedural train split (what the models will read)."""
    task = ArithmeticTask("train+validation")  # the split the shipped tokenizer was built from
    for i in range(n_texts):
        p = task[i]
        yield PLAIN_PROMPT_TEMPLATE.format(question=p.question) + " " + p.solution


def build_tokenizer(vocab_size: int = 1024, n_texts: int = 20_000) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on procedural problems and wrap it for ``transformers``.

    Parameters
    ----------
    vocab_size : int
        Upper bound on the vocabulary (256 byte symbols + 2 special tokens + merges). The procedural
        text runs out of pairs to merge first: the shipped tokenizer has 575 tokens.
    n_texts : int
        Number of train-split problems (seeds ``0..n_texts-1``) the merges are learnt on.

    Returns
    -------
    transformers.PreTrainedTokenizerFast
        ``eos_token == bos_token == "<|endoftext|>"`` (id 0), ``pad_token == "<|pad|>"`` (id 1); no
        special tokens are added automatically when encoding.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(n_texts), trainer=trainer, length=n_texts)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        unk_token=None,
        pad_token=PAD_TOKEN,
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=1024,
    )
