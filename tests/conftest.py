"""Shared fixtures: a tiny tokenizer and tiny random GPT-2 teacher/student saved to a temp dir, so env
tests run in seconds and never touch the network."""

from __future__ import annotations

import os
from contextlib import contextmanager

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from llm_cmdp_env.tasks.arithmetic import ArithmeticTask

EOS = "<|endoftext|>"
PAD = "<pad>"


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE (digits split) with a small vocabulary, trained on a few procedural problems."""
    task = ArithmeticTask("train")
    corpus = [f"Question: {p.question}\nAnswer: {p.solution}" for p in (task[i] for i in range(200))]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=[EOS, PAD], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=PAD)


def tiny_gpt2(vocab: int, layers: int, dim: int, seed: int, eos_id: int) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab, n_positions=1024, n_embd=dim, n_layer=layers, n_head=2,
                     bos_token_id=eos_id, eos_token_id=eos_id)
    model = GPT2LMHeadModel(cfg)
    model.generation_config.eos_token_id = eos_id
    return model.eval()


@contextmanager
def torch_threads(n: int):
    """Run with ``n`` torch CPU threads, restoring the previous count (tests must not change it for others)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@pytest.fixture()
def one_thread():
    """One torch thread for the test (training tests are faster and reproducible that way on 2 cores)."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """Folder with ``teacher/`` and ``student/`` (random tiny GPT-2s, same vocab, same tokenizer)."""
    root = tmp_path_factory.mktemp("tiny_models")
    tok = build_tiny_tokenizer()
    eos = tok.eos_token_id
    for name, layers, dim, seed in (("teacher", 2, 32, 0), ("student", 1, 16, 1)):
        model = tiny_gpt2(len(tok), layers, dim, seed, eos)
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
    return root


@pytest.fixture()
def tiny_env_kwargs(tiny_dir):
    """Keyword arguments for a fast MathDistillEnv on the tiny random models."""
    return {"teacher": str(tiny_dir / "teacher"), "max_new_tokens": 12, "max_prompt_tokens": 160}


@pytest.fixture(scope="session", autouse=True)
def _sb3_logs_in_tmp(tmp_path_factory):
    """stable-baselines3 writes a log folder per run; keep them inside pytest's temp dir."""
    os.environ["SB3_LOGDIR"] = str(tmp_path_factory.mktemp("sb3_logs"))


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """An empty data folder as $LLM_CMDP_DATA_DIR (so neither the user cache nor shared/ is searched)."""
    d = tmp_path / "data"
    monkeypatch.setenv("LLM_CMDP_DATA_DIR", str(d))
    monkeypatch.delenv("LLM_CMDP_GSM8K_DIR", raising=False)
    return d
