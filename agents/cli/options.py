"""The command-line options of a run (``llm-cmdp train`` / ``eval``), declared once: each maps to one field of
:class:`~llm_cmdp_agents.run.config.RunConfig` (``env``, ``policy``, ``train`` or ``eval``), shows that field's default
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
    boolean: bool = False  # --flag / --no-flag
    group: str | None = None  # the --help section it is listed in

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
    from llm_cmdp_env.scoring.decode_modes import DECODE_MODES  # light: no torch

    return [
        Opt("--model", "policy", "model", "the student to train: zoo:student, a model folder, or a Hugging Face id"),
        Opt("--device", "policy", "device", "device of the policy (auto: cuda if present, else cpu)"),
        Opt("--lora-r", "policy", "lora", "train LoRA adapters of this rank instead of all weights (needs peft; "
            "0: off)", type=int, apply=_set_lora, shown_default=0),
        Opt("--gradient-checkpointing", "policy", "gradient_checkpointing", "recompute activations in the backward "
            "pass (less memory, ~30% slower)", flag_only=True),
        Opt("--decode", "policy", "decode", "the sampler's decoding: eager, static (fixed-size KV cache), compiled "
            "(static + torch.compile; CUDA graphs on a GPU) or cudagraph (static replayed from a CUDA graph, no "
            "compiling; CUDA only); the graph modes are not yet measured on a GPU", choices=DECODE_MODES),
    ]


def train_options() -> list[Opt]:
    """The trainer's options, one flag per field of the algorithms' configs (read off the registry): the shared
    fields first, then each algorithm's options, grouped by the algorithms that have them."""
    from dataclasses import fields

    from llm_cmdp_agents.algos import ALGORITHMS, TrainConfig  # light: no torch
    from llm_cmdp_agents.algos.config import option_fields, owners

    shared = {f.name for f in fields(TrainConfig)}
    seen: dict[str, Any] = {}
    for spec in ALGORITHMS.values():
        for f in option_fields(spec.config):
            if f.name not in shared:
                seen.setdefault(f.name, f)
    opts = [_train_opt(f, "training (every algorithm)") for f in option_fields(TrainConfig)]
    for name, f in seen.items():
        algos = owners(name)
        defaults = {a: next(g.default for g in fields(ALGORITHMS[a].config) if g.name == name) for a in algos}
        shown = (next(iter(defaults.values())) if len(set(map(repr, defaults.values()))) == 1
                 else ", ".join(f"{a} {v}" for a, v in defaults.items()))
        opts.append(_train_opt(f, f"options of --algo {' / '.join(algos)}", shown))
    return opts


def _train_opt(f: Any, group: str, shown: Any = None) -> Opt:
    """The flag of config field ``f``: its type, choices and help from the field."""
    from llm_cmdp_agents.algos import ALGORITHMS
    from llm_cmdp_agents.engine.parallel_modes import PARALLEL

    flag = "--" + f.name.replace("_", "-")
    kind = (f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))).split("|")[0].strip()
    if f.name == "algo":
        lines = "; ".join(f"{name}: {spec.help}" for name, spec in ALGORITHMS.items())
        return Opt(flag, "train", f.name, f"the algorithm ({lines})", choices=tuple(ALGORITHMS), group=group)
    if f.name == "group_size":
        shown = ", ".join(f"{a} {spec.config.default_group_size}" for a, spec in ALGORITHMS.items())
    choices = PARALLEL if f.name == "parallel" else None
    if kind == "bool":
        return Opt(flag, "train", f.name, f.metadata["help"], boolean=True, group=group, shown_default=shown)
    convert = {"int": int, "float": float}.get(kind)
    return Opt(flag, "train", f.name, f.metadata["help"], type=convert, choices=choices, group=group,
               shown_default=shown)


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
    groups: dict[str, Any] = {}
    for o in options:
        shown = o.shown_default if o.shown_default is not None else defaults[o.section].get(o.field)
        help_text = f"{o.help} (default: {'none' if shown is None else shown})".replace("%", "%%")
        where = parser if o.group is None else groups.setdefault(o.group, parser.add_argument_group(o.group))
        if o.flag_only:
            where.add_argument(o.flag, dest=o.dest, action="store_true", default=argparse.SUPPRESS, help=help_text)
        elif o.boolean:
            where.add_argument(o.flag, dest=o.dest, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                               help=help_text)
        else:
            where.add_argument(o.flag, dest=o.dest, type=o.type, choices=o.choices, default=argparse.SUPPRESS,
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
