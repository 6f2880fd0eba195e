"""The ``llm-cmdp`` command line: ``demo`` (roll the shipped student out), ``zoo eval``/``zoo train``, and the
agent's ``train``, ``eval`` and ``compare`` (imported lazily from ``llm_cmdp_agents``)."""

from __future__ import annotations

import argparse
import json
import os
import sys


def _print_result(result: dict, as_json: bool, width: int) -> None:
    """One JSON line (``--json``), or one right-aligned ``key: value`` line per entry."""
    if as_json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>{width}}: {v}")


def _zoo_eval(args: argparse.Namespace) -> int:
    from llm_cmdp_env.zoo.eval import evaluate

    result = evaluate(n=args.n, device=args.device, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
    _print_result(result, args.json, width=20)
    return 0


def _zoo_train(args: argparse.Namespace) -> int:
    from llm_cmdp_env.zoo.train import main as train_main

    return train_main(args.train_args)


def _demo(args: argparse.Namespace) -> int:
    from llm_cmdp_env.demo import run_demo

    run_demo(episodes=args.episodes, seed=args.seed, divergence=args.divergence,
             temperature=args.temperature, max_new_tokens=args.max_new_tokens, device=args.device)
    return 0


def _constraint_kwargs(args: argparse.Namespace) -> dict:
    kw = json.loads(args.constraint_kwargs) if args.constraint_kwargs else {}
    if not isinstance(kw, dict):
        raise SystemExit("--constraint-kwargs must be a JSON object, e.g. '{\"unsafe_reward\": -1}'")
    if args.lam is not None:
        if args.constraint != "lagrangian":
            raise SystemExit("--lam applies to --constraint lagrangian only")
        kw["lam"] = args.lam
    if args.constraint == "lagrangian" and "lam" not in kw:
        raise SystemExit("--constraint lagrangian needs --lam (the fixed multiplier)")
    return kw


def _train(args: argparse.Namespace) -> int:
    import time

    from llm_cmdp_agents.runs import EnvConfig, PolicyConfig, train_run
    from llm_cmdp_agents.trainer import TrainConfig

    ckw = _constraint_kwargs(args)
    train_cfg = TrainConfig(
        algo=args.algo, updates=args.updates, prompts_per_update=args.prompts_per_update,
        group_size=args.group_size, epochs=args.epochs, minibatch_size=args.minibatch_size, lr=args.lr,
        temperature=args.temperature, top_p=args.top_p, seed=args.seed, checkpoint_every=args.checkpoint_every,
        ent_coef=args.ent_coef,
    )
    if args.constraint == "learned-lagrangian":  # one multiplier update per training batch, after its last episode
        ckw.setdefault("update_every", train_cfg.episodes_per_update)
    env_cfg = EnvConfig(teacher=args.teacher, dataset=args.dataset, divergence=args.divergence,
                        max_new_tokens=args.max_new_tokens, max_prompt_tokens=args.max_prompt_tokens,
                        device=args.env_device, constraint=args.constraint, budget=args.budget, constraint_kwargs=ckw,
                        env_kwargs={"dtype": args.env_dtype} if args.env_dtype else {})
    lora = {"r": args.lora_r, "alpha": 2 * args.lora_r} if args.lora_r else None
    pol_cfg = PolicyConfig(model=args.model, device=args.device, lora=lora,
                           gradient_checkpointing=args.gradient_checkpointing)
    out = args.out or os.path.join("runs", f"{args.constraint}-{args.algo}-{time.strftime('%Y%m%d-%H%M%S')}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    res = train_run(out, env_cfg, pol_cfg, train_cfg, eval_n=args.eval_n, resume=args.resume,
                    progress=not args.no_progress, out=(lambda m: None) if args.json else print)
    if args.json:
        print(json.dumps({"before": res["before"], "after": res["after"], "train_seconds": res["train_seconds"],
                          "updates": res["updates"], "run_dir": res["run_dir"]}))
    else:
        print(f"run folder: {out}")
    return 130 if res["interrupted"] else 0


def _eval(args: argparse.Namespace) -> int:
    from llm_cmdp_agents.evaluate import evaluate_policy
    from llm_cmdp_agents.policy import LLMPolicy
    from llm_cmdp_agents.runs import EnvConfig, is_run_dir, load_run_policy, make_env, read_run_config

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if is_run_dir(args.target):
        env_cfg, _, _, _ = read_run_config(args.target)
        if args.budget is not None:
            env_cfg.budget = args.budget
        policy = load_run_policy(args.target, device=args.device)
    else:
        ckw = _constraint_kwargs(args)
        env_cfg = EnvConfig(teacher=args.teacher, dataset=args.dataset, divergence=args.divergence,
                            max_new_tokens=args.max_new_tokens, max_prompt_tokens=args.max_prompt_tokens,
                            device=args.env_device, constraint=args.constraint, budget=args.budget,
                            constraint_kwargs=ckw, env_kwargs={"dtype": args.env_dtype} if args.env_dtype else {})
        policy = LLMPolicy.from_pretrained(args.target, device=args.device, value_head=False,
                                           budget_conditioning=args.constraint == "saute")
    env = make_env(env_cfg, args.split)
    res = evaluate_policy(policy, env, args.n, batch_size=args.batch_size, greedy=args.temperature == 0,
                          temperature=args.temperature or 1.0, seed=args.seed, budget=env_cfg.budget)
    res["budget"] = env_cfg.budget
    res["constraint"] = env_cfg.constraint
    _print_result(res, args.json, width=24)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from llm_cmdp_agents.compare import run_compare

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    res = run_compare(args.config, out_dir=args.out, progress=not args.no_progress)
    print(f"results: {res['paths']['json']}\ntable:   {res['paths']['markdown']}\nplot:    {res['paths']['plot']}")
    print(res["markdown"])
    return 0


def _add_env_args(p: argparse.ArgumentParser, divergences: list[str], constraints: list[str]) -> None:
    p.add_argument("--constraint", choices=constraints, default="none", help="constraint-handling wrapper")
    p.add_argument("--budget", type=float, default=None,
                   help="cost budget d (episode sum; per-token bound for worst-case)")
    p.add_argument("--lam", type=float, default=None, help="fixed multiplier of --constraint lagrangian")
    p.add_argument("--constraint-kwargs", default=None, help="JSON object of extra wrapper arguments")
    p.add_argument("--teacher", default="zoo:teacher")
    p.add_argument("--dataset", default="arithmetic", help="arithmetic, gsm8k, or a jsonl path")
    p.add_argument("--divergence", choices=divergences, default="teacher_nll")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--max-prompt-tokens", type=int, default=256)
    p.add_argument("--env-device", default="cpu", help="device of the env's teacher")
    p.add_argument("--env-dtype", default=None, help="dtype of the env's teacher, e.g. bfloat16 on a GPU")
    p.add_argument("--device", default="auto", help="device of the policy (auto: cuda if present)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")


def build_parser() -> argparse.ArgumentParser:
    from llm_cmdp_env.divergences import DIVERGENCES
    from llm_cmdp_env.wrappers.factory import CONSTRAINTS

    divs, cons = sorted(DIVERGENCES), list(CONSTRAINTS)

    p = argparse.ArgumentParser(prog="llm-cmdp", description="LLM distillation as a constrained MDP")
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="roll the shipped student out in MathDistill-v0 and print each episode")
    demo.add_argument("--episodes", type=int, default=5)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--divergence", choices=sorted(DIVERGENCES), default="teacher_nll")
    demo.add_argument("--temperature", type=float, default=0.7)
    demo.add_argument("--max-new-tokens", type=int, default=96)
    demo.add_argument("--device", default="cpu")
    demo.set_defaults(func=_demo)

    zoo = sub.add_parser("zoo", help="the shipped teacher/student pair")
    zsub = zoo.add_subparsers(dest="zoo_command", required=True)
    ev = zsub.add_parser("eval", help="greedy accuracy of the shipped teacher and student on held-out problems")
    ev.add_argument("--n", type=int, default=500, help="number of held-out test-split problems")
    ev.add_argument("--json", action="store_true", help="print one JSON line")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--batch-size", type=int, default=64)
    ev.add_argument("--max-new-tokens", type=int, default=128)
    ev.set_defaults(func=_zoo_eval)
    tr = zsub.add_parser("train", help="retrain the shipped pair (arguments go to llm_cmdp_env.zoo.train)")
    tr.add_argument("train_args", nargs=argparse.REMAINDER)
    tr.set_defaults(func=_zoo_train)

    t = sub.add_parser("train", help="train a student with PPO/GRPO under a constraint; writes a run folder")
    _add_env_args(t, divs, cons)
    t.add_argument("--algo", choices=("ppo", "grpo"), default="ppo")
    t.add_argument("--model", default="zoo:student", help="the student to train (zoo:student, path or HF id)")
    t.add_argument("--updates", type=int, default=20)
    t.add_argument("--prompts-per-update", type=int, default=8)
    t.add_argument("--group-size", type=int, default=None, help="completions per prompt (default 1 PPO, 4 GRPO)")
    t.add_argument("--epochs", type=int, default=2)
    t.add_argument("--minibatch-size", type=int, default=8)
    t.add_argument("--lr", type=float, default=2e-5, help="AdamW learning rate (2e-5 suits the shipped student)")
    t.add_argument("--ent-coef", type=float, default=0.0)
    t.add_argument("--temperature", type=float, default=1.0)
    t.add_argument("--top-p", type=float, default=1.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint-every", type=int, default=10)
    t.add_argument("--eval-n", type=int, default=100, help="test problems evaluated before and after (0: skip)")
    t.add_argument("--lora-r", type=int, default=0, help="train LoRA adapters of this rank (needs peft)")
    t.add_argument("--gradient-checkpointing", action="store_true")
    t.add_argument("--out", default=None, help="run folder (default runs/<constraint>-<algo>-<time>)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--json", action="store_true", help="print one JSON line with before/after evaluations")
    t.set_defaults(func=_train)

    e = sub.add_parser("eval", help="evaluate a run folder or a model on test problems")
    e.add_argument("target", metavar="RUN_OR_MODEL", help="a run folder, a model folder, zoo:student or a HF id")
    _add_env_args(e, divs, cons)
    e.add_argument("--n", type=int, default=100)
    e.add_argument("--split", default="test")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--temperature", type=float, default=0.0, help="0: greedy decoding")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", action="store_true", help="print one JSON line")
    e.set_defaults(func=_eval)

    c = sub.add_parser("compare", help="sweep constraint methods x seeds; write results JSON, Markdown and a plot")
    c.add_argument("--config", required=True, help="JSON config (see benchmarks/compare_wrappers.json)")
    c.add_argument("--out", default=None, help="output folder (default: the config's out)")
    c.add_argument("--threads", type=int, default=0)
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=_compare)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``llm-cmdp`` console script."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
