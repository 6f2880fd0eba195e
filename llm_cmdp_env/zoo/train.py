"""Train the shipped teacher/student pair on the procedural arithmetic task (CPU friendly, resumable).

Usage::

    python -m llm_cmdp_env.zoo.train --out llm_cmdp_env/zoo/weights            # fresh run
    python -m llm_cmdp_env.zoo.train --out llm_cmdp_env/zoo/weights --resume   # after an interruption

Stages: (1) build the tokenizer (:func:`llm_cmdp_env.zoo.tokenizer.build_tokenizer`), (2) train the teacher,
(3) train the student, (4) export both with ``save_pretrained`` (safetensors, fp32) plus the tokenizer into
``<out>/teacher`` and ``<out>/student``.

Each model trains on fresh train-split problems (the data of step ``s`` is a pure function of ``s``), with
the loss on the completion tokens only (``" " + solution + eos``; the prompt is masked). A quarter of the
rows are arithmetic drill rows (the task's own equations packed densely, see :func:`_encode_drill`):
copying the story is learnt in a few hundred steps, the arithmetic is what takes a tiny model long. A
checkpoint with model, optimizer, scheduler, RNG state and step is written under ``--work-dir`` every
``--ckpt-every`` steps and on Ctrl-C / SIGTERM, so ``--resume`` continues exactly where the run stopped.

The shipped teacher/student (2 CPU threads, ~44 min in all) came from::

    python -m llm_cmdp_env.zoo.train --fresh --models teacher --teacher-steps 2400     # ~26 min
    python -m llm_cmdp_env.zoo.train --resume --models teacher --teacher-steps 3600    # ~12 min more
    python -m llm_cmdp_env.zoo.train --resume --models student                         # ~5 min

i.e. the teacher's cosine schedule was extended from 2400 to 3600 steps on resume (a warm restart at
step 2400); a single fresh run with the default ``--teacher-steps 3600`` follows the plain 3600-step
schedule instead. The student is stopped at step 1400 of its 1600-step schedule (``--student-stop``) so it
stays clearly weaker than the teacher (about 50% against 95% greedy accuracy on the test split). Both trained
on the ``"train+validation"`` split (the train split before the validation split was carved out of it).

The second testbed's ``shortcut-student`` (docs/zoo.md; 462 s) came from::

    python -m llm_cmdp_env.zoo.train --fresh --models shortcut-student --work-dir runs/zoo_shortcut

the student's shape, trained on the train split proper, 80 % of its rows in the ``"split"`` solution style
(``--shortcut-fraction``) of which only 5 % teach *starting* in it (``--shortcut-start``; the others mask the
first completion token): it learns the shortcut well but starts like the teacher most of the time. (It was run
as ``--resume`` in a fresh work dir holding a copy of the shipped tokenizer, which ``--fresh`` rebuilds
identically.)
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm
from transformers import (
    GenerationConfig,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from llm_cmdp_env.common.atomic_io import atomic_path
from llm_cmdp_env.common.interrupts import GracefulInterrupt
from llm_cmdp_env.tasks.arithmetic import PLAIN_PROMPT_TEMPLATE, ArithmeticTask
from llm_cmdp_env.zoo.eval import accuracy
from llm_cmdp_env.zoo.tokenizer import build_tokenizer

_CHUNK_BATCHES = 8  # batches drawn together and bucketed by length (less padding)
_DEV_SEED0 = 2_000_000_000  # dev problems: train split, seeds far from any training seed
_N_POSITIONS = 1024
_ARCHS = ("gpt2", "llama")
_DRILL_PROBLEMS = 4  # problems whose equations make up one drill row (~10 equations)


@dataclass
class ModelSpec:
    """Architecture and optimisation settings of one model."""

    name: str
    n_layer: int
    n_embd: int
    n_head: int
    steps: int
    lr: float
    batch_size: int
    warmup: int
    drill: float  # fraction of rows that are arithmetic drill rows
    data_seed: int  # offset of this model's training seeds
    arch: str = "gpt2"  # "gpt2" (learned absolute positions) or "llama" (rotary positions)
    stop: int | None = None  # stop early at this step (the LR schedule still spans ``steps``)
    split: str = "train+validation"  # the task split its problems come from (the shipped pair: train+validation)
    shortcut: float = 0.0  # fraction of rows written in the "split" solution style (the shortcut student)
    shortcut_start: float = 1.0  # share of those rows whose first completion token (the style choice) is learnt


def _encode(tok: PreTrainedTokenizerFast, question: str, solution: str) -> tuple[list[int], list[int]]:
    """Token ids and labels (prompt masked with -100) of ``prompt + " " + solution + eos``.

    Prompt and completion are tokenized separately, as the env sees them (prompt encoded alone, then
    generated tokens appended).
    """
    prompt = tok(PLAIN_PROMPT_TEMPLATE.format(question=question), add_special_tokens=False)["input_ids"]
    comp = tok(" " + solution, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    return prompt + comp, [-100] * len(prompt) + comp


def _equations(solution: str) -> list[str]:
    """The equation chains of a solution (``"23 - 17 = 6"``), i.e. each line's text after its sentence."""
    eqs = []
    for line in solution.split("\n"):
        head, sep, eq = line.rpartition(". ")
        if sep and "=" in eq:
            eqs.append(eq)
    return eqs


def _encode_drill(tok: PreTrainedTokenizerFast, equations: list[str]) -> tuple[list[int], list[int]]:
    """Ids and labels of an arithmetic drill row: ``" a op b = c"`` lines, loss only from ``" ="`` on.

    Drill rows pack the task's own equations densely, so the model sees several times more arithmetic
    per step than the word problems alone give (arithmetic, not reading, is what a tiny model learns
    slowest). The operands are unpredictable and therefore masked.
    """
    ids: list[int] = []
    labels: list[int] = []
    for eq in equations:
        lhs, _, rhs = eq.partition(" =")
        a = tok(" " + lhs, add_special_tokens=False)["input_ids"]
        b = tok(" =" + rhs + "\n", add_special_tokens=False)["input_ids"]
        ids += a + b
        labels += [-100] * len(a) + b
    return ids, labels


class _Data:
    """Deterministic stream of training batches: batch ``step`` depends only on ``(spec, step)``.

    A fraction ``spec.drill`` of the rows are arithmetic drill rows (:func:`_encode_drill`) built from the
    equations of other train-split problems; the rest are full ``prompt + " " + solution + eos`` rows.
    """

    def __init__(self, tok: PreTrainedTokenizerFast, spec: ModelSpec) -> None:
        self.tok = tok
        self.spec = spec
        self.task = ArithmeticTask(spec.split)
        self.shortcut_task = ArithmeticTask(spec.split, solution_style="split")  # same questions, other style
        self._chunk_id = -1
        self._chunk: list[dict[str, torch.Tensor]] = []

    def _make_chunk(self, chunk_id: int) -> list[dict[str, torch.Tensor]]:
        b = self.spec.batch_size
        n_rows = _CHUNK_BATCHES * b
        n_drill = round(self.spec.drill * n_rows)
        seed0 = self.spec.data_seed + chunk_id * n_rows * (1 + _DRILL_PROBLEMS)
        # which rows are written in the shortcut style (none for the shipped pair: their data is unchanged)
        short = (np.random.default_rng([self.spec.data_seed, chunk_id, 1]).random(n_rows) < self.spec.shortcut
                 if self.spec.shortcut > 0 else np.zeros(n_rows, dtype=bool))
        tasks = [self.shortcut_task if f else self.task for f in short]
        examples = [self._encode(tasks[i], seed0 + i) for i in range(n_rows - n_drill)]
        if self.spec.shortcut > 0 and self.spec.shortcut_start < 1:
            # the style is chosen at the first completion token; masking it in most shortcut rows keeps the
            # start-in-shortcut prior low while the shortcut itself gets all those rows of training
            keep = np.random.default_rng([self.spec.data_seed, chunk_id, 2]).random(n_rows) < self.spec.shortcut_start
            for i, (_ids, labels) in enumerate(examples):
                if short[i] and not keep[i]:
                    first = next(j for j, lab in enumerate(labels) if lab != -100)
                    labels[first] = -100
        for r in range(n_drill):
            first = seed0 + n_rows + r * _DRILL_PROBLEMS
            task = tasks[n_rows - n_drill + r]
            eqs = [eq for i in range(_DRILL_PROBLEMS) for eq in _equations(task[first + i].solution)]
            examples.append(_encode_drill(self.tok, eqs))
        examples.sort(key=lambda e: len(e[0]))
        batches = [self._collate(examples[i : i + b]) for i in range(0, len(examples), b)]
        perm = np.random.default_rng([self.spec.data_seed, chunk_id]).permutation(len(batches))
        return [batches[j] for j in perm]

    def _encode(self, task: ArithmeticTask, seed: int) -> tuple[list[int], list[int]]:
        p = task[seed]
        return _encode(self.tok, p.question, p.solution)

    def _collate(self, examples: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(ids) for ids, _ in examples)
        ids = torch.full((len(examples), width), self.tok.pad_token_id, dtype=torch.long)
        labels = torch.full((len(examples), width), -100, dtype=torch.long)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        for row, (x, y) in enumerate(examples):  # right padding for training
            ids[row, : len(x)] = torch.tensor(x)
            labels[row, : len(y)] = torch.tensor(y)
            mask[row, : len(x)] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        chunk_id, offset = divmod(step, _CHUNK_BATCHES)
        if chunk_id != self._chunk_id:
            self._chunk, self._chunk_id = self._make_chunk(chunk_id), chunk_id
        return self._chunk[offset]


def _build_model(spec: ModelSpec, tok: PreTrainedTokenizerFast, seed: int) -> PreTrainedModel:
    """A freshly initialised causal LM for ``spec`` (GPT-2, or Llama-style with rotary positions)."""
    torch.manual_seed(seed)
    common = {
        "vocab_size": len(tok),
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
        "tie_word_embeddings": True,
    }
    if spec.arch == "llama":
        llama = LlamaConfig(
            hidden_size=spec.n_embd,
            intermediate_size=spec.n_embd * 8 // 3 // 16 * 16,
            num_hidden_layers=spec.n_layer,
            num_attention_heads=spec.n_head,
            num_key_value_heads=spec.n_head,
            max_position_embeddings=_N_POSITIONS,
            **common,
        )
        return LlamaForCausalLM(llama)
    if spec.arch != "gpt2":
        raise ValueError(f"arch must be one of {_ARCHS}, got {spec.arch!r}")
    config = GPT2Config(
        n_positions=_N_POSITIONS,
        n_embd=spec.n_embd,
        n_layer=spec.n_layer,
        n_head=spec.n_head,
        resid_pdrop=0.0,  # fresh data every step: no regularisation needed
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        # same tanh-approximate GELU as GPT-2's "gelu_new", as one fused kernel: ~20% faster forwards on CPU
        activation_function="gelu_pytorch_tanh",
        **common,
    )
    return GPT2LMHeadModel(config)


def _max_new_tokens(spec: ModelSpec) -> int:
    """Room for a whole solution: 128 tokens for the teacher's style, 224 with shortcut-style rows (longer)."""
    return 224 if spec.shortcut > 0 else 128


def _lr_lambda(spec: ModelSpec) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < spec.warmup:
            return (step + 1) / spec.warmup
        progress = min(1.0, (step - spec.warmup) / max(1, spec.steps - spec.warmup))
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return f


def _save_ckpt(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, sched: Any, step: int) -> None:
    """Atomically write a resumable checkpoint."""
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
             "step": step, "torch_rng": torch.get_rng_state()}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def train_model(
    spec: ModelSpec,
    tok: PreTrainedTokenizerFast,
    work_dir: Path,
    resume: bool,
    ckpt_every: int,
    eval_every: int,
    n_dev: int,
    seed: int,
    snapshots: bool = False,
    stop: GracefulInterrupt | None = None,
) -> tuple[PreTrainedModel, dict[str, Any]]:
    """Train (or resume) one model; return it with a summary (steps, wall time, final dev accuracy). When
    ``stop.requested`` turns true (Ctrl-C / SIGTERM), the step is finished, a checkpoint written and the process
    exits with status 130."""
    stop = stop or GracefulInterrupt()
    mdir = work_dir / spec.name
    mdir.mkdir(parents=True, exist_ok=True)
    ckpt = mdir / "ckpt.pt"
    model = _build_model(spec, tok, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, betas=(0.9, 0.98), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(spec))
    step = 0
    summary_path = mdir / "summary.json"
    prior_seconds = 0.0
    history: list[dict[str, int | None]] = []  # one entry per (re)start: where it began, which schedule
    if resume and ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        step = int(state["step"])
        if summary_path.is_file():
            prior = json.loads(summary_path.read_text())
            prior_seconds = float(prior.get("train_seconds", 0.0))
            history = list(prior.get("history", []))
        tqdm.write(f"[{spec.name}] resumed at step {step}/{spec.steps}")
    n_params = sum(p.numel() for p in model.parameters())
    history.append({"start_step": step, "steps": spec.steps, "stop": spec.stop})
    tqdm.write(f"[{spec.name}] {spec.n_layer} layers x {spec.n_embd}, {n_params / 1e6:.2f}M parameters")
    dev = [ArithmeticTask(spec.split)[_DEV_SEED0 + i] for i in range(n_dev)]
    data = _Data(tok, spec)
    model.train()
    t0 = time.perf_counter()
    ema: float | None = None
    dev_acc: dict[str, float] = {}

    def write_summary() -> None:
        summary = {
            "spec": asdict(spec),
            "n_params": n_params,
            "step": step,
            "train_seconds": round(prior_seconds + time.perf_counter() - t0, 1),
            "history": history,
            "dev": dev_acc,
        }
        summary_path.write_text(json.dumps(summary, indent=2))

    last = spec.steps if spec.stop is None else min(spec.stop, spec.steps)
    bar = tqdm(total=last, initial=step, desc=spec.name, dynamic_ncols=True, mininterval=2.0)
    while step < last:
        batch = data.batch(step)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{ema:.4f}", lr=f"{sched.get_last_lr()[0]:.2e}", refresh=False)
        if step % ckpt_every == 0 or step == last or stop.requested:
            _save_ckpt(ckpt, model, opt, sched, step)
            write_summary()
        if stop.requested:
            bar.close()
            tqdm.write(f"[{spec.name}] interrupted: checkpoint saved at step {step}; rerun with --resume")
            sys.exit(130)
        if n_dev and (step % eval_every == 0 or step == last):
            dev_acc = accuracy(model, tok, dev, batch_size=64, max_new_tokens=_max_new_tokens(spec))
            tqdm.write(
                f"[{spec.name}] step {step}: loss {ema:.4f} dev accuracy {dev_acc['accuracy']:.3f} "
                f"eos rate {dev_acc['eos_rate']:.3f} ({time.perf_counter() - t0:.0f}s)"
            )
            write_summary()
            if snapshots:  # weights only, to pick an early-stopping point afterwards
                torch.save(model.state_dict(), mdir / f"snapshot_{step:06d}.pt")
    bar.close()
    if not dev_acc and n_dev:
        dev_acc = accuracy(model, tok, dev, batch_size=64, max_new_tokens=_max_new_tokens(spec))
    write_summary()
    model.eval()
    return model, json.loads(summary_path.read_text())


def export(model: PreTrainedModel, tok: PreTrainedTokenizerFast, out: Path, summary: dict[str, Any]) -> None:
    """Save ``model`` (safetensors, fp32), the tokenizer and a generation config into ``out``."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        do_sample=False,
        max_new_tokens=128,
    )
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    (out / "training_summary.json").write_text(json.dumps(summary, indent=2))
    portable_export(out)


def portable_export(out: Path) -> None:
    """Make an exported folder loadable by transformers 4.x and 5.x alike, and world-readable.

    transformers 5 records ``tokenizer_class: "TokenizersBackend"`` (unknown to 4.x) plus local loading
    flags; ``PreTrainedTokenizerFast`` loads the same ``tokenizer.json`` in both. safetensors files are
    written with mode 0600, which an installed package's other users could not read.
    """
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    for key in ("is_local", "local_files_only"):
        cfg.pop(key, None)
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    for f in out.iterdir():
        if f.is_file():
            f.chmod(0o644)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    p = argparse.ArgumentParser(
        prog="python -m llm_cmdp_env.zoo.train",
        description="Train the shipped teacher/student pair on the procedural arithmetic task.",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "weights",
        help="folder receiving teacher/ and student/ (default: the package's zoo/weights)",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=Path("runs/zoo_train"),
        help="checkpoints and tokenizer of the run (default: runs/zoo_train)",
    )
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints in --work-dir")
    p.add_argument("--fresh", action="store_true", help="discard existing checkpoints in --work-dir")
    p.add_argument("--models", nargs="+", choices=("teacher", "student", "shortcut-student"),
                   default=["teacher", "student"],
                   help="which models to train (shortcut-student: the second testbed's student, docs/zoo.md)")
    p.add_argument("--arch", choices=_ARCHS, default="gpt2", help="model family of both models")
    p.add_argument("--teacher-layers", type=int, default=4)
    p.add_argument("--teacher-dim", type=int, default=256)
    p.add_argument("--teacher-heads", type=int, default=4)
    p.add_argument("--teacher-steps", type=int, default=3600)
    p.add_argument("--teacher-lr", type=float, default=2e-3)
    p.add_argument("--student-layers", type=int, default=4)
    p.add_argument("--student-dim", type=int, default=128)
    p.add_argument("--student-heads", type=int, default=4)
    p.add_argument("--student-steps", type=int, default=1600)
    p.add_argument(
        "--student-stop", type=int, default=1400, help="stop the student early at this step (weaker student)"
    )
    p.add_argument("--snapshots", action="store_true", help="keep the weights at every dev evaluation")
    p.add_argument("--student-lr", type=float, default=2e-3)
    p.add_argument("--shortcut-fraction", type=float, default=0.8,
                   help="shortcut-student: fraction of its rows in the 'split' solution style")
    p.add_argument("--shortcut-start", type=float, default=0.05,
                   help="shortcut-student: share of its 'split' rows that teach starting in that style (the rest "
                        "mask the first completion token), which sets how often it starts in it")
    p.add_argument("--shortcut-steps", type=int, default=1600, help="shortcut-student: training steps")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--drill", type=float, default=0.25, help="fraction of rows that are arithmetic drill")
    p.add_argument("--vocab-size", type=int, default=1024, help="upper bound; BPE stops when no pair is left")
    p.add_argument("--ckpt-every", type=int, default=50)
    p.add_argument("--eval-every", type=int, default=400)
    p.add_argument("--n-dev", type=int, default=128, help="train-split dev problems for progress reports")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.resume and args.fresh:
        p.error("--resume and --fresh are mutually exclusive")

    torch.set_num_threads(args.threads)
    work: Path = args.work_dir
    tok_dir = work / "tokenizer"
    has_state = any((work / m / "ckpt.pt").is_file() for m in args.models)
    if has_state and not (args.resume or args.fresh):
        p.error(f"{work} already holds checkpoints: pass --resume to continue or --fresh to start over")
    if args.fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)

    if args.resume and (tok_dir / "tokenizer.json").is_file():
        tok = PreTrainedTokenizerFast.from_pretrained(tok_dir)
    else:
        tok = build_tokenizer(vocab_size=args.vocab_size)
        tok.save_pretrained(tok_dir)
    tqdm.write(f"tokenizer: {len(tok)} tokens, eos={tok.eos_token_id}, pad={tok.pad_token_id}")

    common = {"batch_size": args.batch_size, "warmup": args.warmup, "drill": args.drill, "arch": args.arch}
    student_shape = {"n_layer": args.student_layers, "n_embd": args.student_dim, "n_head": args.student_heads,
                     "lr": args.student_lr}
    specs = {
        "teacher": ModelSpec(name="teacher", n_layer=args.teacher_layers, n_embd=args.teacher_dim,
                             n_head=args.teacher_heads, steps=args.teacher_steps, lr=args.teacher_lr, data_seed=0,
                             **common),
        # different problems than the teacher saw
        "student": ModelSpec(name="student", steps=args.student_steps, data_seed=500_000_000, stop=args.student_stop,
                             **student_shape, **common),
        # yet other problems, from the train split proper (validation held out)
        "shortcut-student": ModelSpec(name="shortcut-student", steps=args.shortcut_steps, data_seed=700_000_000,
                                      split="train", shortcut=args.shortcut_fraction,
                                      shortcut_start=args.shortcut_start, **student_shape, **common),
    }
    with GracefulInterrupt("Ctrl-C: finishing this step, then saving a checkpoint (again to stop now)",
                           out=tqdm.write) as stop:
        for name in args.models:
            model, summary = train_model(
                specs[name],
                tok,
                work,
                args.resume,
                args.ckpt_every,
                args.eval_every,
                args.n_dev,
                args.seed,
                snapshots=args.snapshots,
                stop=stop,
            )
            export(model, tok, args.out / name, summary)
            tqdm.write(f"[{name}] exported to {args.out / name} ({summary['train_seconds']:.0f}s of training)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
