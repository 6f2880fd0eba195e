"""The shipped teacher/student pair: present, loadable, consistent, small, and the teacher is competent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from llm_cmdp_env import zoo
from llm_cmdp_env.judge.verify import check_answer
from llm_cmdp_env.tasks.arithmetic import PLAIN_PROMPT_TEMPLATE, ArithmeticTask
from llm_cmdp_env.zoo import ZOO_DIR, ZOO_MODELS, zoo_model_path
from llm_cmdp_env.zoo.eval import greedy_completions
from llm_cmdp_env.zoo.tokenizer import build_tokenizer
from llm_cmdp_env.zoo.train import _encode, _encode_drill, _equations

Loaded = dict[str, tuple[PreTrainedModel, PreTrainedTokenizerBase]]


@pytest.fixture(scope="module")
def loaded() -> Loaded:
    out = {}
    for name in ZOO_MODELS:
        path = zoo_model_path(name)
        model = AutoModelForCausalLM.from_pretrained(path)
        model.eval()
        out[name] = (model, AutoTokenizer.from_pretrained(path))
    return out


def test_zoo_paths() -> None:
    assert ZOO_MODELS == ("teacher", "student", "shortcut-student")
    for name in ZOO_MODELS:
        path = zoo_model_path(name)
        assert path == ZOO_DIR / name and path.is_dir()
        assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
        assert (path / "tokenizer.json").is_file()


def test_zoo_path_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="teacher.*student"):
        zoo_model_path("oracle")
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="zoo.train"):
        zoo_model_path("teacher")


def test_weights_fit_size_budget() -> None:
    total = sum(f.stat().st_size for f in ZOO_DIR.rglob("*") if f.is_file())
    assert total <= 25 * 1024 * 1024, f"zoo weights take {total / 2**20:.1f} MiB"


def test_models_share_vocab_and_special_tokens(loaded: Loaded) -> None:
    (teacher, t_tok), (student, s_tok) = loaded["teacher"], loaded["student"]
    assert t_tok.get_vocab() == s_tok.get_vocab() == loaded["shortcut-student"][1].get_vocab()
    for model, tok in loaded.values():
        assert model.config.vocab_size == len(tok)
        assert model.get_output_embeddings().weight.shape[0] == len(tok)
        assert model.config.n_positions >= 1024
        assert model.config.eos_token_id == tok.eos_token_id == tok.bos_token_id
        assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
        assert next(model.parameters()).dtype == torch.float32
    assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in teacher.parameters())


def test_tokenizer_splits_digits_and_encodes_any_text(loaded: Loaded) -> None:
    tok = loaded["teacher"][1]
    ids = tok("12 + 345 = 357", add_special_tokens=False)["input_ids"]
    digit_tokens = [t for t in tok.convert_ids_to_tokens(ids) if any(ch.isdigit() for ch in t)]
    assert digit_tokens == list("12345357")
    text = "Natalia sold clips to 48 friends — then half as many in May. 😀 Ünïcode, $3.50"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert tok("Tom has 2 apples.", add_special_tokens=False)["input_ids"][0] != tok.eos_token_id


def test_teacher_solves_test_problems(loaded: Loaded) -> None:
    model, tok = loaded["teacher"]
    problems = [ArithmeticTask("test")[i] for i in range(10)]
    prompts = [PLAIN_PROMPT_TEMPLATE.format(question=p.question) for p in problems]
    completions, ended = greedy_completions(model, tok, prompts, batch_size=10, max_new_tokens=128)
    solved = sum(check_answer(c, p.answer).correct for c, p in zip(completions, problems))
    assert solved >= 8, completions
    assert all(ended)


@pytest.mark.parametrize("name", ZOO_MODELS)
def test_batched_decoding_matches_unbatched(loaded: Loaded, name: str) -> None:
    model, tok = loaded[name]
    problems = [ArithmeticTask("test")[i] for i in range(3)]  # prompts of different lengths
    prompts = [PLAIN_PROMPT_TEMPLATE.format(question=p.question) for p in problems]
    assert len({len(tok(p)["input_ids"]) for p in prompts}) > 1
    batched, _ = greedy_completions(model, tok, prompts, batch_size=3, max_new_tokens=40)
    single = [greedy_completions(model, tok, [p], batch_size=1, max_new_tokens=40)[0][0] for p in prompts]
    assert batched == single


def test_tokenizer_config_is_portable() -> None:
    # "PreTrainedTokenizerFast" loads in transformers 4.x and 5.x ("TokenizersBackend" only in 5.x).
    for name in ZOO_MODELS:
        cfg = json.loads((zoo_model_path(name) / "tokenizer_config.json").read_text())
        assert cfg["tokenizer_class"] == "PreTrainedTokenizerFast"


def test_tokenizer_is_rebuilt_identically(loaded: Loaded) -> None:
    assert build_tokenizer().get_vocab() == loaded["teacher"][1].get_vocab()


def test_training_rows_mask_the_prompt(loaded: Loaded) -> None:
    tok = loaded["teacher"][1]
    p = ArithmeticTask("train")[0]
    ids, labels = _encode(tok, p.question, p.solution)
    prompt = tok(PLAIN_PROMPT_TEMPLATE.format(question=p.question), add_special_tokens=False)["input_ids"]
    n = len(prompt)
    assert ids[:n] == prompt and set(labels[:n]) == {-100}
    assert labels[n:] == ids[n:] and ids[-1] == tok.eos_token_id
    assert tok.decode(ids[n:-1]) == " " + p.solution
    eqs = _equations(p.solution)
    assert eqs == ["10 + 5 = 15"]
    d_ids, d_labels = _encode_drill(tok, eqs)
    assert tok.decode(d_ids) == " 10 + 5 = 15\n"
    assert tok.decode([i for i, lab in zip(d_ids, d_labels) if lab != -100]) == " = 15\n"


def test_shortcut_student_rows_mix_styles_and_mostly_hide_the_style_choice(loaded: Loaded) -> None:
    from llm_cmdp_env.zoo.train import ModelSpec, _Data

    tok = loaded["teacher"][1]
    spec = ModelSpec(name="s", n_layer=1, n_embd=8, n_head=1, steps=1, lr=1e-3, batch_size=32, warmup=1, drill=0.0,
                     data_seed=7, split="train", shortcut=0.8, shortcut_start=0.05)
    rows = _Data(tok, spec)._make_chunk(0)
    starts, chosen = 0, 0
    n = 0
    for batch in rows:
        for ids, labels in zip(batch["input_ids"], batch["labels"]):
            first = int((labels != -100).nonzero()[0]) if (labels != -100).any() else None
            n += 1
            text = tok.decode(ids[ids != tok.pad_token_id])
            if "Answer: Split." in text:
                starts += 1
                # the first completion token's label is masked unless this row teaches the choice
                chosen += first is not None and tok.decode(ids[first:first + 1]).strip() == "S"
    assert 0.72 < starts / n < 0.88  # 80 % of rows in the shortcut style
    assert 0 < chosen / starts < 0.15  # ~5 % of them teach starting in it
