"""TRL's GRPOTrainer on the shipped student, scored by the env's own reward and cost.

    pip install trl
    python examples/trl_grpo.py [--steps 4] [--budget 10] [--max-new-tokens 96]

The policy is the shipped student (a small GPT-2 with its own tokenizer) prompted with the plain template;
the data are procedural arithmetic problems. Three TRL reward functions, all from
``llm_cmdp_env.interop.trl_rewards``:

- ``env_return`` (weight 1, the training signal): the episode return of the paper's budget-reward stack
  ``gym.make("MathDistill-v0", constraint="budget", budget=...)``: 1 for a right answer whose teacher NLL
  (the cost) stays within the budget, else 0. Every number comes from the env (``fast_path.replay``).
- ``answer_correct`` and ``env_cost`` (weight 0: logged only): answer correctness and minus the episode
  cost. The two env rewards share one replay per batch (one teacher forward).

CPU friendly: a handful of steps, 2 prompts x 4 generations each. It shows the plumbing, not a training
result (``llm-cmdp train`` is the project's own trainer).
"""

from __future__ import annotations

import argparse
import sys
import tempfile


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=4, help="GRPO optimizer steps")
    p.add_argument("--budget", type=float, default=10.0, help="episode teacher-NLL budget d")
    p.add_argument("--max-new-tokens", type=int, default=128, help="env max_new_tokens = TRL max_completion_length")
    p.add_argument("--lr", type=float, default=1e-5)
    args = p.parse_args()

    try:
        from datasets import Dataset
        from trl import GRPOConfig, GRPOTrainer
    except ImportError as e:
        print(f"this example needs TRL ({e}); install it with: pip install trl", file=sys.stderr)
        return 1

    import gymnasium as gym
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback

    import llm_cmdp_env  # noqa: F401  (registers MathDistill-v0)
    from llm_cmdp_env.interop.trl_rewards import EnvReward, answer_reward
    from llm_cmdp_env.models.prompts import PLAIN_PROMPT_TEMPLATE
    from llm_cmdp_env.tasks.arithmetic import ArithmeticTask
    from llm_cmdp_env.zoo import zoo_model_path

    torch.set_num_threads(2)
    # the env that scores: shipped teacher, paper's budget reward, same length limit as TRL's generation
    env = gym.make("MathDistill-v0", constraint="budget", budget=args.budget, max_new_tokens=args.max_new_tokens,
                   prompt_template="plain")
    # TRL's dataset: the prompt the policy sees (the env's plain template), plus the question and the
    # reference answer that the reward functions read as columns
    task = ArithmeticTask("train")
    problems = [task[i] for i in range(64)]
    dataset = Dataset.from_dict({
        "prompt": [PLAIN_PROMPT_TEMPLATE.format(question=pr.question) for pr in problems],
        "question": [pr.question for pr in problems],
        "answer": [pr.answer for pr in problems],
    })

    student = zoo_model_path("student")
    model = AutoModelForCausalLM.from_pretrained(student)
    tokenizer = AutoTokenizer.from_pretrained(student)
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out, max_steps=args.steps, learning_rate=args.lr, per_device_train_batch_size=8,
            num_generations=4, max_completion_length=args.max_new_tokens, temperature=0.7, beta=0.0, logging_steps=1,
            save_strategy="no", report_to="none", reward_weights=[1.0, 0.0, 0.0], seed=0, disable_tqdm=True,
            use_cpu=True,  # the shipped pair is tiny (TRL otherwise asks for bf16 on a GPU)
        )
        trainer = GRPOTrainer(
            model=model, processing_class=tokenizer, args=config, train_dataset=dataset,
            reward_funcs=[EnvReward(env, "return"), answer_reward, EnvReward(env, "cost")],
        )
        trainer.remove_callback(PrinterCallback)  # the table below instead of TRL's raw log dicts
        trainer.train()

    columns = ("rewards/env_return/mean", "rewards/answer_correct/mean", "env_return/episode_cost",
               "env_return/constraint_satisfied", "env_return/retokenised")
    print(f"\n{'step':>4}  " + "  ".join(f"{c.split('/', 1)[1]:>28}" for c in columns))
    for row in trainer.state.log_history:
        if "rewards/env_return/mean" in row:
            print(f"{row['step']:>4}  " + "  ".join(f"{row.get(c, float('nan')):>28.3f}" for c in columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
