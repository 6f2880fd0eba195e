"""The command-line options of a run (``llm-cmdp train`` / ``eval``), declared once: each maps to one field of
:class:`~llm_cmdp_agents.config.RunConfig` (``env``, ``policy``, ``train`` or ``eval``), shows that field's default
in ``--help``, and is applied only when given, so a ``--config`` file or a resumed run's stored settings are
overridden by exactly the flags the user typed."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["OPTION_FLAGS", "Opt", "add_options", "config_overrides", "env_options", "eval_options", "merge",
           "policy_options", "train_options"]


@dataclass(frozen=True)
class Opt:
    """One flag: ``--flag`` sets ``section.field`` (or calls ``apply`` for a flag that fills part of a field)."""

    flag: str
    section: str
    field: str
    help: str
    type: Callable[[str], Any] | None = None
    choices: Sequence[Any] | None = None
    flag_only: bool = False  # a store_true switch
    apply: Callable[[dict[str, Any], Any], None] | None = None
    shown_default: Any = None  # default shown in --help instead of the field's (a flag filling part of a field)

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"unsafe_reward\": -1}'")
    return value


#: Options of a constraint rule that have a flag of their own (the others go in ``--constraint-kwargs``).
OPTION_FLAGS = {"lam": "--lam"}


def _set_lam(section: dict[str, Any], value: float) -> None:
    section.setdefault("constraint_kwargs", {})["lam"] = value


def _set_constraint_kwargs(section: dict[str, Any], value: dict[str, Any]) -> None:
    section.setdefault("constraint_kwargs", {}).update(value)


def _set_dtype(section: dict[str, Any], value: str) -> None:
    section.setdefault("env_kwargs", {})["dtype"] = value


def _set_vocab_size(section: dict[str, Any], value: int) -> None:
    section.setdefault("env_kwargs", {})["vocab_size"] = value


def _set_lora(section: dict[str, Any], r: int) -> None:
    section["lora"] = {"r": r, "alpha": 2 * r} if r else None


def env_options(divergences: Sequence[str], constraints: Sequence[str]) -> list[Opt]:
    """The env's options (teacher, data, divergence, constraint)."""
    return [
        Opt("--constraint", "env", "constraint", "constraint-handling wrapper (docs/wrappers.md)", choices=constraints),
        Opt("--budget", "env", "budget", "cost budget d: episode sum (per-token bound for worst-case); also the "
            "constraint-satisfaction threshold of evaluations", type=float),
        Opt("--lam", "env", "constraint_kwargs", "fixed multiplier of --constraint lagrangian", type=float,
            apply=_set_lam, shown_default="none"),
        Opt("--constraint-kwargs", "env", "constraint_kwargs", "JSON object of extra constraint arguments, e.g. "
            "'{\"unsafe_reward\": -1}' (docs/wrappers.md)", type=_json_object, apply=_set_constraint_kwargs,
            shown_default="{}"),
        Opt("--teacher", "env", "teacher", "frozen teacher: zoo:teacher, a model folder, or a Hugging Face id in "
            "the local cache"),
        Opt("--dataset", "env", "dataset", "arithmetic, gsm8k, math500, a .jsonl file or a folder of <split>.jsonl "
            "files (docs/data.md)"),
        Opt("--divergence", "env", "divergence", "per-token cost (docs/env.md)", choices=divergences),
        Opt("--max-new-tokens", "env", "max_new_tokens", "episode length limit", type=int),
        Opt("--max-prompt-tokens", "env", "max_prompt_tokens", "longest prompt accepted", type=int),
        Opt("--env-device", "env", "device", "device of the env's teacher"),
        Opt("--env-dtype", "env", "env_kwargs", "dtype of the env's teacher, e.g. bfloat16 on a GPU", apply=_set_dtype,
            shown_default="the model's"),
        Opt("--vocab-size", "env", "env_kwargs", "cut the teacher's output layer to this many rows (a teacher whose "
            "rows past the shared tokenizer are padding: Qwen2.5-Math-7B 152064 -> 151936 for the 1.5B)", type=int,
            apply=_set_vocab_size, shown_default="the teacher's"),
    ]


def policy_options() -> list[Opt]:
    from llm_cmdp_env.decode_modes import DECODE_MODES  # light: no torch

    return [
        Opt("--model", "policy", "model", "the student to train: zoo:student, a model folder, or a Hugging Face id"),
        Opt("--device", "policy", "device", "device of the policy (auto: cuda if present, else cpu)"),
        Opt("--lora-r", "policy", "lora", "train LoRA adapters of this rank instead of all weights (needs peft; "
            "0: off)", type=int, apply=_set_lora, shown_default=0),
        Opt("--gradient-checkpointing", "policy", "gradient_checkpointing", "recompute activations in the backward "
            "pass (less memory, ~30%% slower)", flag_only=True),
        Opt("--decode", "policy", "decode", "the sampler's decoding: eager, static (fixed-size KV cache), compiled "
            "(static + torch.compile; CUDA graphs on a GPU) or cudagraph (static replayed from a CUDA graph, no "
            "compiling; CUDA only); the graph modes are not yet measured on a GPU", choices=DECODE_MODES),
    ]


def train_options() -> list[Opt]:
    """The trainer's options (TrainConfig fields)."""
    from llm_cmdp_agents.config import ALGOS, PARALLEL  # light: no torch

    t = "train"
    return [
        Opt("--algo", t, "algo", "ppo, grpo (policy gradient on the env's reward) or a distillation baseline: gkd "
            "(generalised JSD), minillm (reverse-KL policy gradient)", choices=ALGOS),
        Opt("--updates", t, "updates", "number of updates in total", type=int),
        Opt("--prompts-per-update", t, "prompts_per_update", "distinct prompts per update", type=int),
        Opt("--group-size", t, "group_size", "completions per prompt", type=int, shown_default="1 for PPO, 4 for GRPO"),
        Opt("--epochs", t, "epochs", "passes over each batch", type=int),
        Opt("--minibatch-size", t, "minibatch_size", "episodes per gradient step", type=int),
        Opt("--lr", t, "lr", "AdamW learning rate (2e-5 suits the shipped student)", type=float),
        Opt("--ent-coef", t, "ent_coef", "entropy bonus", type=float),
        Opt("--temperature", t, "temperature", "sampling temperature of the policy", type=float),
        Opt("--top-p", t, "top_p", "nucleus filter of the sampler", type=float),
        Opt("--seed", t, "seed", "seeds the problem stream, sampling and shuffling", type=int),
        Opt("--gkd-beta", t, "gkd_beta", "generalised JSD interpolation (0 forward KL, 1 reverse KL)", type=float),
        Opt("--gkd-lambda", t, "gkd_lambda", "GKD's on-policy fraction (else reference solutions)", type=float),
        Opt("--distill-coef", t, "distill_coef", "weight of the JSD to the teacher added to PPO/GRPO (GRPO + GKD)",
            type=float),
        Opt("--checkpoint-every", t, "checkpoint_every", "keep a numbered checkpoint every this many updates "
            "(0: only latest.pt, at the end and on Ctrl-C)", type=int),
        Opt("--parallel", t, "parallel", "under torchrun: ddp (a copy of the student per rank) or fsdp (the student "
            "sharded over the ranks; docs/distributed.md)", choices=PARALLEL),
    ]


def eval_options(prefix: str) -> list[Opt]:
    """The evaluation's options, ``--eval-n`` style for ``train`` (prefix ``"eval-"``), ``--n`` for ``eval``."""
    opts = [
        Opt(f"--{prefix}n", "eval", "n", "test problems evaluated (greedy); 0 skips the evaluation", type=int),
        Opt(f"--{prefix}batch-size", "eval", "batch_size", "completions sampled and scored at once", type=int),
        Opt(f"--{prefix}split", "eval", "split", "split of the evaluation problems"),
    ]
    if prefix:  # `eval` has the env's --dataset for this
        opts.append(Opt(f"--{prefix}dataset", "eval", "dataset", "dataset of the evaluation",
                        shown_default="the training dataset"))
    return opts


def add_options(parser: argparse.ArgumentParser, options: Sequence[Opt], defaults: dict[str, dict[str, Any]]) -> None:
    """Add ``options`` to ``parser``; ``--help`` shows the default of each from ``defaults`` (a
    ``RunConfig.to_dict()``), and a flag that is not given leaves no value (so it overrides nothing)."""
    for o in options:
        shown = o.shown_default if o.shown_default is not None else defaults[o.section].get(o.field)
        help_text = f"{o.help} (default: {'none' if shown is None else shown})"
        if o.flag_only:
            parser.add_argument(o.flag, dest=o.dest, action="store_true", default=argparse.SUPPRESS, help=help_text)
        else:
            parser.add_argument(o.flag, dest=o.dest, type=o.type, choices=o.choices, default=argparse.SUPPRESS,
                                help=help_text, metavar=None if o.choices else o.dest.upper())


def config_overrides(args: argparse.Namespace, options: Sequence[Opt]) -> dict[str, dict[str, Any]]:
    """``{section: {field: value}}`` of the options given on the command line."""
    out: dict[str, dict[str, Any]] = {}
    for o in options:
        if hasattr(args, o.dest):
            section = out.setdefault(o.section, {})
            value = getattr(args, o.dest)
            if o.apply is not None:
                o.apply(section, value)
            else:
                section[o.field] = value
    return out


def merge(config: dict[str, dict[str, Any]], overrides: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``config`` (a ``RunConfig.to_dict()``) with ``overrides`` applied; dict-valued fields are merged key by key."""
    out = {k: dict(v) for k, v in config.items()}
    for section, values in overrides.items():
        for key, value in values.items():
            old = out.setdefault(section, {}).get(key)
            out[section][key] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
    return out
