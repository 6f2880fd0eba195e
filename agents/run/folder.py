"""Run folders: train with before/after evaluation and write everything a run leaves behind (the env and the
policy come from :mod:`llm_cmdp_agents.run.build`).

A run folder holds::

    config.json          every setting of the run: env / policy / train / eval (what --resume and eval read)
    progress.csv         one row per update (task reward, penalised reward, cost vs budget, lambda, losses)
    curves.png           training curves (written at the end and on Ctrl-C; ``llm-cmdp plot`` redraws them)
    tb/                  TensorBoard event files (when tensorboard is installed)
    checkpoints/         latest.pt (+ update_XXXXXX.pt every checkpoint_every updates), each carrying its SHA-256
    final/               the trained policy (loads as a Hugging Face model; usable as the env's student=)
    results.json         evaluation before and after training, training time, status

Every file is written atomically; ``results.json`` holds the "before" evaluation as soon as it is done, so a run
killed at any point and resumed with ``--resume`` ends with the same ``results.json`` as an uninterrupted run
(up to ``train_seconds`` and ``run_dir``; tested).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from llm_cmdp_agents.engine.data_parallel import parameters_per_rank, unsharded_copy
from llm_cmdp_agents.engine.distributed import World
from llm_cmdp_agents.engine.policy import LLMPolicy
from llm_cmdp_agents.run.build import make_env, make_eval_env, make_policy
from llm_cmdp_agents.run.checkpoint import latest_checkpoint, read_policy_state
from llm_cmdp_agents.run.config import RunConfig
from llm_cmdp_agents.run.evaluate import check_eval_size, evaluate_policy
from llm_cmdp_agents.run.lock import RunLock
from llm_cmdp_agents.run.plots import write_run_plots
from llm_cmdp_agents.run.trainer import Trainer
from llm_cmdp_env.common.atomic_io import write_json_atomic

__all__ = ["is_run_dir", "load_run_policy", "read_run_config", "recorded_threads", "resume_config", "train_run"]

CONFIG_FILE = "config.json"
FINAL_DIR = "final"
RESULTS_FILE = "results.json"


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` is a run folder written by :func:`train_run`. A folder that holds a run's other files
    (``progress.csv``, ``checkpoints/``, ``results.json``) beside a ``config.json`` that is not valid JSON is an
    error naming the file and what to do (it must not be taken for a model folder)."""
    p = Path(path) / CONFIG_FILE
    if not p.is_file():
        return False
    try:
        value = json.loads(p.read_text())
        if not isinstance(value, dict):
            raise TypeError(f"it holds a JSON {type(value).__name__}, not an object")
        return "train" in value
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as e:
        run_files = [n for n in ("progress.csv", "checkpoints", RESULTS_FILE) if (Path(path) / n).exists()]
        if run_files:
            raise ValueError(_corrupt_config(p, e)) from None
        return False


def _corrupt_config(path: Path, error: Exception) -> str:
    run = path.parent
    final = run / FINAL_DIR
    model = (f"evaluate the trained model folder directly, giving the run's env flags again: llm-cmdp eval {final} "
             "--constraint ... --budget ..." if final.is_dir() else "the run has no final/ model yet, so it cannot be "
             "evaluated or resumed without its settings")
    return (f"{path} is not valid JSON ({error}): the run's settings were cut or edited. Restore the file (from a "
            f"backup, or rewrite it with the settings the run was started with), or {model}")


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The settings stored in a run folder."""
    path = Path(run_dir) / CONFIG_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{run_dir} is not a run folder (no {CONFIG_FILE})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(_corrupt_config(path, e)) from None
    return RunConfig.from_dict(raw)


def recorded_threads(run_dir: str | Path) -> int | str | None:
    """The torch thread count a run recorded in its ``config.json`` (an int, ``"adaptive"``, or None for runs
    from before it was recorded)."""
    try:
        value = json.loads((Path(run_dir) / CONFIG_FILE).read_text()).get("threads")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return value if value == "adaptive" or (isinstance(value, int) and value > 0) else None


def load_run_policy(run_dir: str | Path, device: str = "auto") -> LLMPolicy:
    """The trained policy of a run: ``final/`` if the run finished, else its newest intact checkpoint. Which one
    it is stays on the policy as ``policy.weights_source`` (a path), so an evaluation can say what it scored."""
    run_dir = Path(run_dir)
    if (run_dir / FINAL_DIR / "agent_config.json").is_file():
        policy = LLMPolicy.from_pretrained(run_dir / FINAL_DIR, device=device)
        policy.weights_source = str(run_dir / FINAL_DIR)
        return policy
    cfg = read_run_config(run_dir)
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise FileNotFoundError(f"{run_dir} has neither {FINAL_DIR}/ nor a checkpoint in checkpoints/")
    cfg.policy.device = device
    policy = make_policy(cfg.policy, cfg.train.algo, cfg.env.constraint)
    policy.load_trainable_state_dict({k: v.to(policy.device) for k, v in read_policy_state(ckpt).items()})
    policy.weights_source = str(ckpt)
    return policy


#: Settings a resumed run may change: how long to train, how often to save, and the evaluation (whose "before"
#: is then recomputed on the new settings, so before and after always cover the same problems).
RESUMABLE_CHANGES = {"train": {"updates", "checkpoint_every"}, "eval": {"n", "batch_size", "split", "dataset", "seed"}}


def resume_config(run_dir: str | Path, changes: Mapping[str, Mapping[str, Any]] | None = None) -> RunConfig:
    """The stored config of a run, with ``changes`` (``{section: {field: value}}``) applied where a resumed run
    may change them (:data:`RESUMABLE_CHANGES`); any other change that differs from the stored value is an
    error naming it."""
    cfg = read_run_config(run_dir)
    d = cfg.to_dict()
    refused = []
    for section, values in (changes or {}).items():
        for key, value in values.items():
            if key in RESUMABLE_CHANGES.get(section, ()):
                d[section][key] = value
            elif d.get(section, {}).get(key) != value:
                refused.append(f"{section}.{key}: {d.get(section, {}).get(key)!r} (stored) vs {value!r}")
    if refused:
        raise ValueError(f"a resumed run keeps its settings; these differ from {Path(run_dir) / CONFIG_FILE}: "
                         + "; ".join(refused) + ". Start a new run (another --out) to change them.")
    return RunConfig.from_dict(d)


def train_run(
    run_dir: str | Path,
    config: RunConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    wandb: bool | dict[str, Any] = False,
    adaptive_threads: bool = False,
    world: World | None = None,
    out: Callable[[str], None] = print,
    force: bool = False,
    threads: int | str | None = None,
) -> dict[str, Any]:
    """Train a policy and write a run folder; evaluate before and after (``config.eval``).

    The folder has one writer: rank 0 holds its lock (:class:`~llm_cmdp_agents.run.lock.RunLock`) from before
    anything is read or written until the end, so a second process on the same folder fails at once with
    :class:`~llm_cmdp_agents.run.lock.RunLockedError` naming the owner (``force``: take over a lock left by
    another host). ``threads`` (the torch thread count the run uses, or ``"adaptive"``) is recorded in
    ``config.json`` so that a resumed run reuses it.

    With ``resume=True`` the run continues from its newest intact checkpoint; ``config`` must then be the
    stored one (see :func:`resume_config`, which also applies the changes a resumed run may make). In a
    data-parallel job (``world``) every rank calls this with the same arguments: the ranks share the training
    and the evaluations, rank 0 alone writes the run folder (``config.json`` records ``world_size``), and a run
    resumes with the same or another number of ranks.

    Returns
    -------
    dict
        ``before`` and ``after`` evaluations (see :func:`~llm_cmdp_agents.run.evaluate.evaluate_policy`), ``eval``
        (the evaluation settings), ``train_seconds``, ``updates``, ``interrupted``, ``status``, ``run_dir``.
    """
    world = world or World()
    if not world.is_main:
        return _train_run(Path(run_dir), config, resume, progress, wandb, adaptive_threads, world, out, threads)
    with RunLock(run_dir, force=force):
        return _train_run(Path(run_dir), config, resume, progress, wandb, adaptive_threads, world, out, threads)


def _train_run(run_dir: Path, config: RunConfig, resume: bool, progress: bool, wandb: bool | dict[str, Any],
               adaptive_threads: bool, world: World, out: Callable[[str], None],
               threads: int | str | None) -> dict[str, Any]:
    results_path = run_dir / RESULTS_FILE
    prior: dict[str, Any] = {}
    ckpt = None
    if not world.is_main:
        out = _silent
    if resume:
        if not is_run_dir(run_dir):
            raise FileNotFoundError(f"--resume: {run_dir} is not a run folder (no {CONFIG_FILE})")
        ckpt = latest_checkpoint(run_dir)  # damaged ones are skipped; all damaged: a CheckpointError naming them
        if ckpt is None:  # stopped before its first checkpoint: nothing trained to keep, it starts at update 0
            out(f"note: {run_dir} has no checkpoint yet: training starts from update 0")
        if results_path.is_file():
            try:
                prior = json.loads(results_path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ValueError(f"--resume: {results_path} is not valid JSON ({e}): it was cut or edited. Delete it "
                                 "and resume again: the before-training evaluation is then recomputed (the same "
                                 "numbers) and the after-training one is written at the end") from None
            if not isinstance(prior, dict):
                raise ValueError(f"--resume: {results_path} holds no JSON object; delete it and resume again")
    elif (run_dir / "checkpoints").exists() or results_path.exists():
        raise FileExistsError(f"{run_dir} already holds a run; pass resume=True (--resume) or another folder")
    stored = {**config.to_dict(), "world_size": world.size}
    if threads is not None:
        stored["threads"] = threads
    # built (and so validated) before anything is written
    env = make_env(config.env, config.env.split, learn_multiplier=not world.active)
    policy = make_policy(config.policy, config.train.algo, config.env.constraint, seed=config.train.seed)
    test_base = make_eval_env(config).unwrapped if config.eval.n else None
    if test_base is not None:  # before the folder is written: a too large --eval-n leaves nothing behind
        check_eval_size(test_base, config.eval.n, flag="--eval-n")
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / CONFIG_FILE, stored)
    trainer = Trainer(env, policy, config.train, run_dir=run_dir, progress=progress, wandb=wandb, run_config=stored,
                      adaptive_threads=adaptive_threads, world=world)

    per_rank = parameters_per_rank(policy)
    if config.train.parallel == "fsdp" and world.active:
        total = sum(p.numel() for p in policy.parameters())  # a DTensor's numel is its global size
        out(f"FSDP: the student is sharded over {world.size} ranks ({per_rank:,} of its {total:,} parameter values "
            "on rank 0)")

    def evaluate(p: LLMPolicy) -> dict[str, Any]:
        ev = config.eval
        return evaluate_policy(p, make_eval_env(config, test_base), ev.n, batch_size=ev.batch_size, seed=ev.seed,
                               world=world)

    def results(**kw: Any) -> dict[str, Any]:
        res = {"before": before, "after": None, "eval": dataclasses.asdict(config.eval),
               "train_seconds": trainer.train_seconds, "updates": trainer.update_idx, "interrupted": False,
               "status": "training", "world_size": world.size, "parallel": config.train.parallel,
               "student_parameters_per_rank": per_rank, "run_dir": str(run_dir), **kw}
        if world.is_main:
            write_json_atomic(results_path, res)
        return res

    before = prior.get("before") if prior.get("eval") == dataclasses.asdict(config.eval) else None
    if before is None and config.eval.n:
        # the untrained policy (a resumed run evaluates a fresh copy: its own weights have moved on)
        initial = policy if ckpt is None else make_policy(config.policy, config.train.algo, config.env.constraint,
                                                          seed=config.train.seed)
        before = evaluate(initial)
        del initial
        out(f"before: {_summary(before)}  (n={config.eval.n} {config.eval.split} problems)")
    if ckpt is not None:
        trainer.load(ckpt)
        out(f"resumed from {ckpt} at update {trainer.update_idx}")
    results()  # the "before" is on disk before any training starts
    trainer.train()
    if trainer.interrupted:
        out(f"interrupted at update {trainer.update_idx}: resume with --resume (checkpoint in {run_dir}/checkpoints)")
        res = results(interrupted=True, status="interrupted")
        if world.is_main:
            write_run_plots(run_dir, strict=False)
        return res
    # an FSDP student is gathered into a plain CPU copy first (a collective: every rank takes part)
    final = unsharded_copy(policy, lambda: make_policy(dataclasses.replace(config.policy, device="cpu"),
                                                       config.train.algo, config.env.constraint))
    if world.is_main:
        assert final is not None
        final.save_pretrained(run_dir / FINAL_DIR, tokenizer=env.unwrapped.tokenizer)
    del final
    after = evaluate(policy) if config.eval.n else None
    if after is not None:
        out(f"after:  {_summary(after)}  ({trainer.update_idx} updates, {trainer.train_seconds:.0f} s of training)")
    res = results(after=after, status="finished", last_update=trainer.history[-1] if trainer.history else None)
    if world.is_main:
        write_run_plots(run_dir, strict=False)
    world.barrier()
    return res


def _silent(message: str) -> None:
    """What a rank other than 0 prints (nothing: one copy of every line is enough)."""


def _summary(ev: dict[str, Any]) -> str:
    sat = ev["constraint_satisfaction"]
    return (f"accuracy {ev['accuracy']:.3f}  constraint satisfaction "
            f"{'n/a (no budget)' if sat is None else f'{sat:.3f}'}  mean cost {ev['mean_cost']:.2f}  "
            f"mean length {ev['mean_length']:.1f}")
