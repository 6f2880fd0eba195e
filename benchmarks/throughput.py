"""Throughput of MathDistill-v0 against the physical limit: the teacher's own forward pass.

Every ratio is measured with both sides in the same run, on the same model and thread settings:

1. raw_step   the teacher's KV-cached one-token forward (tokens/s) at batch 1, 8, 32, 128 (8, 64, 256 for the
              big models on CUDA)
2. env_step   native vector env steps x num_envs per second at the same batches; ratio env/raw
3. fast_path  replay of whole completions through a wrapper stack (tokens/s) vs one raw full forward (side by side,
              and episodes one by one)
4. sampler    the agent's batched sampler vs transformers' ``generate()`` on the same model and batch
5. naive      per-step re-encoding of the whole prefix (an env without a cache) vs ours, episode of 256
6. growth     per-token cost of the vector env at episode lengths 64, 256, 1024
7. modes      the sampler and the env step in each static decode mode (static cache; compiled; CUDA graph)

Run ``python benchmarks/throughput.py [--quick | --smoke] [--models ...] [--decode-modes ...] --json PATH``; prints
a table and writes JSON (rewritten after every stage, ``complete: false`` until the end, so a run stopped by a
time limit keeps what it finished) with ``env_vs_raw`` (batch -> ratio), ``fast_vs_raw``, ``ours_vs_naive_256``,
``growth_1024_over_64`` for the shipped teacher at top level, and per model under ``models.<name>``:
``fast_vs_raw``, ``env_vs_raw``, ``sampler_vs_generate`` (``eager`` / eager ``generate()``; ``compiled`` and
``cudagraph``: our sampler in that mode / ``generate()`` on a static cache with a compiled forward),
``compiled_vs_eager`` (per static decode mode: ``sampler``, its tokens/s over our eager sampler's; ``env_step``,
the vector env in that mode over the model's eager cached step, at the sampler's batch: 64 on CUDA, the issue's
">= 4x"), ``peak_mem_gib`` (per stage, on CUDA; null on a CPU), ``env_memory_growth_gib`` (CUDA: memory held after
4 more episodes of the same env, per batch), ``stage_seconds``. ``--decode-modes`` (default ``cudagraph,compiled``
on CUDA, none on a CPU: compiling takes ~40 s per shape there) picks the static decode modes timed. On a GPU of
known memory bandwidth (``--bandwidth-gbs``, default from the device name for H100/H200/A100) each decode row also
reports ``weight_bandwidth_fraction``: steps/s x weight bytes / bandwidth.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from tqdm import tqdm  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from llm_cmdp_env.common.atomic_io import write_json_atomic, write_result_json  # noqa: E402
from llm_cmdp_env.envs.math_distill import MathDistillEnv  # noqa: E402
from llm_cmdp_env.envs.vector import MathDistillVectorEnv  # noqa: E402
from llm_cmdp_env.judge.verify import prewarm  # noqa: E402
from llm_cmdp_env.models.hf_compat import cache_kwargs, output_cache  # noqa: E402
from llm_cmdp_env.models.loading import load_model, load_tokenizer  # noqa: E402
from llm_cmdp_env.replay.fast_path import replay, replay_scored, sample_problems, score_completions  # noqa: E402
from llm_cmdp_env.scoring.decode_modes import DECODE_MODES, check_decode  # noqa: E402
from llm_cmdp_env.scoring.kv_cache import new_cache  # noqa: E402

_BANDWIDTH_GBS = {"H200": 4800.0, "H100": 3350.0, "A100": 2039.0}
"""Peak memory bandwidth of common GPUs (SXM parts; a PCIe card is slower: pass --bandwidth-gbs)."""


def _known_bandwidth(name: str) -> float | None:
    return next((bw for key, bw in _BANDWIDTH_GBS.items() if key in name), None)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _timeit(fn, repeats: int = 1) -> float:
    """Best wall time of ``repeats`` runs (after the caller's warm-up)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _interleaved_best(runs, rounds: int) -> list[float]:
    """Best time of each timing function over ``rounds`` alternating rounds (after one warm-up call each).

    Both sides of a ratio are measured in the same rounds, alternately, so a slow phase of a shared machine
    hits both instead of biasing the ratio. Each function runs its workload and returns the seconds of
    the part it times.
    """
    for run in runs:
        run()
    best = [float("inf")] * len(runs)
    for _ in range(rounds):
        for i, run in enumerate(runs):
            best[i] = min(best[i], run())
    return best


def _timer(fn, *args, **kwargs):
    """A function that runs ``fn(*args, **kwargs)`` and returns its wall time (for :func:`_interleaved_best`)."""

    def run() -> float:
        start = time.perf_counter()
        fn(*args, **kwargs)
        return time.perf_counter() - start

    return run


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _tokens(rng: np.random.Generator, shape, vocab: int, eos: set[int]) -> np.ndarray:
    """Random token ids avoiding EOS (so episodes run to their length limit)."""
    x = rng.integers(3, vocab, size=shape)
    for e in eos:
        x[x == e] = e + 1 if e + 1 < vocab else e - 1
    return x


def raw_step_runner(model, batch: int, prompt_len: int, steps: int, device, growable: bool = True):
    """A function timing ``steps`` of the bare model's cached one-token forward (context from ``prompt_len``).

    ``growable=True`` uses the same in-place growing KV cache as the env (the fair physical limit);
    ``False`` uses transformers' default ``DynamicCache`` (which copies the cache on every token)."""
    vocab = model.config.vocab_size
    ids = torch.randint(3, vocab, (batch, prompt_len), device=device)
    toks = torch.randint(3, vocab, (steps + 2, batch, 1), device=device)

    @torch.inference_mode()
    def run() -> float:
        first = cache_kwargs(model, new_cache(model)) if growable else {}
        out = model(input_ids=ids, use_cache=True, **first)
        cache = output_cache(out)
        _sync(device)
        start = time.perf_counter()  # time the decode steps only, not the prefill
        for i in range(steps):
            out = model(input_ids=toks[i], use_cache=True, **cache_kwargs(model, cache))
            cache = output_cache(out)
            torch.log_softmax(out.logits[:, -1].float(), -1)  # the env needs log-probs too
        _sync(device)
        return time.perf_counter() - start

    return run


def raw_step(model, batch: int, prompt_len: int, steps: int, device, growable: bool = True) -> float:
    """Tokens/s of :func:`raw_step_runner` (best of 2 after a warm-up)."""
    (t,) = _interleaved_best([raw_step_runner(model, batch, prompt_len, steps, device, growable)], 2)
    return batch * steps / t


def env_step_runner(kwargs: dict, batch: int, steps: int, eos: set[int], vocab: int, decode: str = "eager"):
    """A function timing ``steps`` vector-env steps of ``batch`` rows; also the rows' cache width after reset.
    ``decode``: the env's teacher step (eager, static or compiled; llm_cmdp_env.scoring.static)."""
    venv = MathDistillVectorEnv(batch, max_new_tokens=steps + 4, decode=decode, **kwargs)
    rng = np.random.default_rng(0)
    acts = _tokens(rng, (steps + 2, batch), min(vocab, len(venv.tokenizer)), eos)

    def run() -> float:
        venv.reset(seed=0)
        venv.step(acts[0])
        _sync(venv.setup.device)
        start = time.perf_counter()  # time the steps only, not the reset
        for i in range(1, steps + 1):
            venv.step(acts[i])
        _sync(venv.setup.device)
        return time.perf_counter() - start

    venv.reset(seed=0)
    return run, venv._teacher.cache_length


def fast_path(kwargs: dict, batch: int, length: int, eos: set[int], vocab: int) -> dict:
    """Replay tokens/s through a budget + statistics stack vs one raw full forward of the same batch; also the
    replay stepping every episode through the stack one by one (``side_by_side=False``), in the same rounds."""
    from llm_cmdp_env.wrappers import apply_constraint

    env = apply_constraint(MathDistillEnv(max_new_tokens=length, **kwargs), "budget", budget=50.0)
    env.reset(seed=0)
    problems = sample_problems(env, batch)
    rng = np.random.default_rng(1)
    comps = _tokens(rng, (batch, length), min(vocab, len(env.unwrapped.tokenizer)), eos).tolist()
    teacher = env.unwrapped.teacher
    width = max(len(env.unwrapped.encode_problem(p)) for p in problems) + length
    ids = torch.randint(3, teacher.config.vocab_size, (batch, width), device=env.unwrapped.setup.device)

    @torch.inference_mode()
    def raw() -> None:
        teacher(input_ids=ids, use_cache=False)
        _sync(env.unwrapped.setup.device)

    t_fast, t_seq, t_raw = _interleaved_best([_timer(replay, env, problems, comps, side_by_side=True),
                                              _timer(replay, env, problems, comps, side_by_side=False), _timer(raw)], 5)
    n = batch * length
    # what replaying costs beyond the teacher's scoring (judging included), per token, timed on the scored
    # batch: on a GPU, where the scoring takes a few microseconds a token, this is what bounds the ratio
    scored = score_completions(env, problems, comps)
    t_side, t_one = _interleaved_best([_timer(replay_scored, env, problems, scored, side_by_side=True),
                                       _timer(replay_scored, env, problems, scored, side_by_side=False)], 5)
    return {"fast_tokens_per_s": n / t_fast, "raw_tokens_per_s": n / t_raw, "ratio": t_raw / t_fast,
            "one_by_one_tokens_per_s": n / t_seq, "one_by_one_ratio": t_raw / t_seq,
            "beyond_scoring_us_per_token": {"side_by_side": t_side / n * 1e6, "one_by_one": t_one / n * 1e6}}


def naive_vs_ours(kwargs: dict, length: int, eos: set[int], vocab: int) -> dict:
    """One episode of ``length`` tokens: our cached single env vs re-encoding the prefix every step."""
    env = MathDistillEnv(max_new_tokens=length, **kwargs)
    rng = np.random.default_rng(2)
    acts = _tokens(rng, (length,), min(vocab, len(env.tokenizer)), eos).tolist()

    def ours() -> None:
        env.reset(seed=0)
        for a in acts:
            env.step(a)

    teacher = env.teacher
    env.reset(seed=0)
    prompt = list(env.prompt_ids)

    @torch.inference_mode()
    def naive() -> None:
        seq = list(prompt)
        for a in acts:
            ids = torch.tensor([seq], device=env.setup.device)
            torch.log_softmax(teacher(input_ids=ids, use_cache=False).logits[0, -1].float(), -1)
            seq.append(a)
        _sync(env.setup.device)

    ours()
    t_ours = _timeit(ours, 1)
    t_naive = _timeit(naive, 1)
    return {"ours_tokens_per_s": length / t_ours, "naive_tokens_per_s": length / t_naive,
            "ratio": t_naive / t_ours}


def growth(kwargs: dict, batch: int, lengths: list[int], eos: set[int], vocab: int) -> dict:
    """Seconds per token over whole episodes of each length: the vector env and the raw cached forward."""
    out: dict = {"env": {}, "raw": {}}
    teacher = kwargs["teacher"]
    device = next(teacher.parameters()).device
    for length in lengths:
        venv = MathDistillVectorEnv(batch, max_new_tokens=length, **kwargs)
        rng = np.random.default_rng(3)
        acts = _tokens(rng, (length, batch), min(vocab, len(venv.tokenizer)), eos)
        venv.reset(seed=0)
        width = venv._teacher.cache_length
        for i in range(min(4, length)):
            venv.step(acts[i])

        def run(venv=venv, acts=acts, length=length) -> None:
            venv.reset(seed=0)
            for i in range(length):
                venv.step(acts[i])
            _sync(venv.setup.device)

        out["env"][length] = _timeit(run, 1) / (batch * length)
        out["raw"][length] = 1.0 / raw_step(teacher, batch, width, length, device)
    return out


def realistic_gpt2(vocab: int, device, dtype) -> GPT2LMHeadModel:
    """A randomly initialised GPT-2 small shape (12 layers x 768) with a 32k vocabulary."""
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=vocab, n_positions=2048, n_embd=768, n_layer=12, n_head=12,
                     bos_token_id=0, eos_token_id=0)
    return load_model(GPT2LMHeadModel(cfg), device, dtype)


def proxy_152k(device, dtype) -> GPT2LMHeadModel:
    """CPU proxy of the big-vocabulary shapes: a 4 x 256 trunk with Qwen2.5's 151,936-token vocabulary, so the
    cost of turning hidden states into log-probs (what the fast path must not waste) dominates, as it does for
    the real 0.5B model on a GPU."""
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=151936, n_positions=2048, n_embd=256, n_layer=4, n_head=4, bos_token_id=0,
                     eos_token_id=0, activation_function="gelu_pytorch_tanh")
    return load_model(GPT2LMHeadModel(cfg), device, dtype)


def qwen2_shape(size: str, device, dtype) -> torch.nn.Module:
    """A randomly initialised ``Qwen2ForCausalLM`` of the Qwen2.5-0.5B or -1.5B shape (offline: weights do not
    matter for speed)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    shapes = {"0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                           intermediate_size=4864),
              "1.5b": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                           intermediate_size=8960)}
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=151936, tie_word_embeddings=True, max_position_embeddings=4096, bos_token_id=0,
                      eos_token_id=0, **shapes[size])
    with torch.device(device):  # initialised where it runs: a 1.5B model's random init on a CPU takes a while
        model = Qwen2ForCausalLM(cfg)
    return load_model(model, device, dtype or ("bfloat16" if torch.device(device).type == "cuda" else None))


#: ``--models`` names -> builder(device, dtype)
MODELS = {
    "shipped": lambda device, dtype: load_model("zoo:teacher", device, dtype),
    "gpt2-12x768": lambda device, dtype: realistic_gpt2(32768, device, dtype),
    "proxy-152k": proxy_152k,
    "qwen2-0.5b-shape": lambda device, dtype: qwen2_shape("0.5b", device, dtype),
    "qwen2-1.5b-shape": lambda device, dtype: qwen2_shape("1.5b", device, dtype),
}


def sampler_rows(model: torch.nn.Module, batch: int, prompt_len: int, new_tokens: int, device,
                 modes: tuple[str, ...] = ()) -> dict:
    """Tokens/s of the agent's sampler (eager, and each of the static decode ``modes``) and of transformers'
    ``generate`` on the same model and batch, all timed in the same alternating rounds (best of 2 after a
    warm-up), every row sampling ``new_tokens`` tokens with no stop. With ``"compiled"`` among ``modes``,
    ``generate`` is also timed the compiled way (``cache_implementation="static"`` and a compiled forward, on a
    copy of the model). Ratios: ``sampler_vs_generate`` eager / eager and compiled / compiled (a graph mode
    ``cudagraph`` against the compiled ``generate``: the fastest ``generate`` there is); ``vs_eager``: each mode's
    tokens/s over our eager sampler's."""
    from llm_cmdp_agents.engine.policy import LLMPolicy
    from llm_cmdp_agents.engine.sampling import sample

    vocab = model.config.vocab_size
    prompts = torch.randint(3, vocab, (batch, prompt_len)).tolist()
    ids = torch.tensor(prompts, device=device)
    never = [vocab + 10]  # an EOS id no token can take: every row runs to new_tokens
    gen = torch.Generator(device=device).manual_seed(0)

    def ours(mode: str):
        policy = LLMPolicy(model, value_head=False, device=device, decode=mode)
        policy.requires_grad_(False)

        def run() -> float:
            _sync(device)
            t0 = time.perf_counter()
            sample(policy, prompts, new_tokens, never, 0, generator=gen, decode=mode)
            _sync(device)
            return time.perf_counter() - t0

        return run

    def hf(compiled: bool):
        hf_model, kw = model, {}
        if compiled:
            import copy

            hf_model = copy.deepcopy(model)
            hf_model.forward = torch.compile(hf_model.forward,
                                             mode="reduce-overhead" if device.type == "cuda" else None)
            kw = {"cache_implementation": "static"}

        @torch.inference_mode()
        def run() -> float:
            _sync(device)
            t0 = time.perf_counter()
            hf_model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
                              max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0,
                              eos_token_id=None, **kw)
            _sync(device)
            return time.perf_counter() - t0

        return run

    names = ["eager", *modes]
    runs = {f"ours_{m}": ours(m) for m in names}
    runs["generate_eager"] = hf(False)
    if "compiled" in modes:
        runs["generate_compiled"] = hf(True)
    times = dict(zip(runs, _interleaved_best(list(runs.values()), 2)))
    n = batch * new_tokens
    tps = {k: n / t for k, t in times.items()}
    ours_tps = {m: tps[f"ours_{m}"] for m in names}
    gen_tps = {k.removeprefix("generate_"): v for k, v in tps.items() if k.startswith("generate_")}
    vs_gen = {"eager": ours_tps["eager"] / gen_tps["eager"]}
    for m in ("compiled", "cudagraph"):
        vs_gen[m] = ours_tps[m] / gen_tps["compiled"] if m in ours_tps and "compiled" in gen_tps else None
    return {"batch": batch, "new_tokens": new_tokens, "ours_tokens_per_s": ours_tps,
            "generate_tokens_per_s": gen_tps, "sampler_vs_generate": vs_gen,
            "vs_eager": {m: ours_tps[m] / ours_tps["eager"] for m in modes}}


def with_positions(model: torch.nn.Module, n_positions: int) -> torch.nn.Module:
    """A copy of a GPT-2-style model whose position table has ``n_positions`` rows (the extra rows are
    randomly initialised). For timing long episodes only: the compute per token is unchanged, and the
    shipped teacher never saw positions past its short training sequences anyway."""
    import copy

    model = copy.deepcopy(model)
    old = model.transformer.wpe
    new = torch.nn.Embedding(n_positions, old.embedding_dim, device=old.weight.device, dtype=old.weight.dtype)
    torch.nn.init.normal_(new.weight, std=0.02)
    with torch.no_grad():
        new.weight[: old.num_embeddings] = old.weight
    model.transformer.wpe = new
    model.config.n_positions = n_positions
    return model


def _peak_reset(device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device) -> float | None:
    """Peak GPU memory since the last reset (None on a CPU: not measured there)."""
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def _sizes(big: bool, quick: bool, smoke: bool, cuda: bool) -> dict:
    """Batches, steps and lengths of each stage. ``smoke``: the smallest run that goes through every stage (for
    tests and dry runs of a GPU script; its figures mean nothing)."""
    if smoke:
        return dict(batches=[1, 2], steps=3, fast=(2, 8), sampler=(2, 8, 4), naive=16, growth=[64, 128])
    if big and cuda:  # the GPU batches: launch-bound at 8, hardware-bound towards 256
        batches = [8, 64, 256]
    else:
        batches = [1, 8, 32] if (quick and big) else [1, 8, 32, 128]
    return dict(batches=batches, steps=(8 if big else 24) if quick else (24 if big else 64),
                fast=(64, 128) if (big and cuda) else (8, 64) if quick else (32, 128),  # the GPU batch
                sampler=(64 if cuda else 8, 64, 32 if quick else 64),
                naive=128 if (quick and big) else 256,
                growth=[64, 256] if (quick and big) else [64, 256, 1024])


STAGES = ("env_step", "fast_path", "sampler", "modes", "naive", "growth")
"""The stages of :func:`bench_model`, in order (``--stages`` picks some)."""


def bench_model(name: str, kwargs: dict, quick: bool, bar: tqdm, modes: tuple[str, ...] = (),
                bandwidth_gbs: float | None = None, smoke: bool = False, res: dict | None = None,
                save=lambda: None, stages: tuple[str, ...] = STAGES) -> dict:
    """The ``stages`` for one model, into ``res`` (a fresh dict by default); ``save()`` is called after each
    stage, so a run stopped by a time limit keeps the stages it finished. ``modes``: static decode modes of the
    sampler and the env step to time against eager (``static``, ``compiled``, ``cudagraph``; the ``modes`` stage
    runs only with some)."""
    teacher = kwargs["teacher"]
    vocab = teacher.config.vocab_size
    eos = set(kwargs["tokenizer"].all_special_ids) | {0}
    device = next(teacher.parameters()).device
    sz = _sizes(name != "shipped", quick, smoke, device.type == "cuda")
    steps = sz["steps"]
    res = {} if res is None else res
    mem = res["peak_mem_gib"] = {}
    seconds = res["stage_seconds"] = {}
    res.update({"raw_step": {}, "env_step": {}, "env_vs_raw": {}, "raw_step_dynamic_cache": {}})

    def done(stage: str, t0: float) -> None:
        seconds[stage] = time.perf_counter() - t0
        bar.update(1)
        save()

    t0 = time.perf_counter()
    for b in sz["batches"] if "env_step" in stages else ():
        _peak_reset(device)
        env_run, width = env_step_runner(kwargs, b, steps, eos, vocab)
        t_env, t_raw = _interleaved_best([env_run, raw_step_runner(teacher, b, width, steps, device)], 3)
        env_tps, raw_tps = b * steps / t_env, b * steps / t_raw
        res["raw_step"][b], res["env_step"][b] = raw_tps, env_tps
        res["raw_step_dynamic_cache"][b] = raw_step(teacher, b, width, steps, device, growable=False)
        res["env_vs_raw"][b] = env_tps / raw_tps
        mem[f"env_step_batch_{b}"] = _peak_gib(device)
        if device.type == "cuda":  # memory held after 4 more episodes of the same env: must not grow
            before = torch.cuda.memory_allocated(device)
            for _ in range(4):
                env_run()
            res.setdefault("env_memory_growth_gib", {})[b] = (torch.cuda.memory_allocated(device) - before) / 2**30
        save()
    if "env_step" in stages:
        done("env_step", t0)

    if "fast_path" in stages:
        t0 = time.perf_counter()
        _peak_reset(device)
        res["fast_path"] = fast_path(kwargs, *sz["fast"], eos, vocab)
        res["fast_vs_raw"] = res["fast_path"]["ratio"]
        mem["fast_path"] = _peak_gib(device)
        done("fast_path", t0)

    sb, sp, sn = sz["sampler"]
    if "sampler" in stages:
        t0 = time.perf_counter()
        _peak_reset(device)
        res["sampler"] = sampler_rows(teacher, sb, sp, sn, device, modes)
        res["sampler_vs_generate"] = res["sampler"]["sampler_vs_generate"]
        mem["sampler"] = _peak_gib(device)
        done("sampler", t0)

    res["compiled_vs_eager"] = {"sampler": res["sampler"]["vs_eager"]} if modes and "sampler" in res else None
    if modes and "modes" in stages:
        # the env's static-cache teacher step in each mode against the model's own eager cached step, same batch
        # as the sampler (64 on CUDA: the ">= 4x"), same rounds
        t0 = time.perf_counter()
        _peak_reset(device)
        runners = {m: env_step_runner(kwargs, sb, steps, eos, vocab, decode=m) for m in modes}
        runs, width = {m: r[0] for m, r in runners.items()}, runners[modes[0]][1]
        times = _interleaved_best([*runs.values(), raw_step_runner(teacher, sb, width, steps, device)], 3)
        t_raw = times[-1]
        res["env_step_modes"] = {"batch": sb, "raw_eager_tokens_per_s": sb * steps / t_raw,
                                 "env_tokens_per_s": {m: sb * steps / t for m, t in zip(runs, times)}}
        res["compiled_vs_eager"] = {**(res["compiled_vs_eager"] or {}),
                                    "env_step": {m: t_raw / t for m, t in zip(runs, times)}}
        mem["env_step_modes"] = _peak_gib(device)
        done("modes", t0)

    if bandwidth_gbs:
        weight_bytes = sum(p.numel() * p.element_size() for p in teacher.parameters())

        def fraction(tokens_per_s: float, batch: int) -> float:
            """Decode steps/s x weight bytes over the bandwidth: how close a step is to reading the weights once."""
            return tokens_per_s / batch * weight_bytes / (bandwidth_gbs * 1e9)

        frac = res["weight_bandwidth_fraction"] = {
            "raw_step": {b: fraction(tps, b) for b, tps in res["raw_step"].items()},
            "env_step": {b: fraction(tps, b) for b, tps in res["env_step"].items()}}
        if "sampler" in res:
            frac["sampler"] = {m: fraction(tps, sb) for m, tps in res["sampler"]["ours_tokens_per_s"].items()}
        if "env_step_modes" in res:
            frac["env_step_modes"] = {m: fraction(tps, sb)
                                      for m, tps in res["env_step_modes"]["env_tokens_per_s"].items()}
        save()

    if "naive" in stages:
        t0 = time.perf_counter()
        res["naive"] = naive_vs_ours(kwargs, sz["naive"], eos, vocab)
        res["ours_vs_naive_256"] = res["naive"]["ratio"] if sz["naive"] == 256 else None
        done("naive", t0)
    if "growth" in stages:
        t0 = time.perf_counter()
        res.update(growth_rows(kwargs, sz["growth"], eos, vocab))
        done("growth", t0)
    return res


def growth_rows(kwargs: dict, lengths: list[int], eos: set[int], vocab: int) -> dict:
    """The growth stage's figures: :func:`growth` at batch 1 and its longest-over-64 ratios."""
    teacher = kwargs["teacher"]
    res: dict = {}
    gkw = dict(kwargs)
    room = lengths[-1] + kwargs.get("max_prompt_tokens", 512)  # the env checks prompt + episode fit the table
    if getattr(teacher.config, "n_positions", room) < room and hasattr(teacher, "transformer"):
        gkw["teacher"] = with_positions(teacher, room)
        res["growth_note"] = f"position table extended from {teacher.config.n_positions} for timing"
    gb = 1
    res["growth_batch"] = gb
    res["growth_seconds_per_token"] = growth(gkw, gb, lengths, eos, vocab)
    g, graw = res["growth_seconds_per_token"]["env"], res["growth_seconds_per_token"]["raw"]
    res["growth_1024_over_64"] = g[1024] / g[64] if 1024 in g else None
    res["growth_longest_over_64"] = {"length": max(g), "env": g[max(g)] / g[64], "raw": graw[max(g)] / graw[64]}
    return res


def print_table(results: dict) -> None:
    """The figures of every model, stage by stage (stages not run are left out)."""
    for name, res in results.items():
        print(f"\n== {name} ==")
        if res.get("raw_step"):
            print(f"{'batch':>6} {'raw tok/s':>12} {'env tok/s':>12} {'env/raw':>8} {'raw, HF DynamicCache':>22}")
            for b in res["raw_step"]:
                print(f"{b:>6} {res['raw_step'][b]:>12.0f} {res['env_step'][b]:>12.0f} {res['env_vs_raw'][b]:>8.3f} "
                      f"{res['raw_step_dynamic_cache'][b]:>22.0f}")
        if "fast_path" in res:
            fp = res["fast_path"]
            print(f"fast path: {fp['fast_tokens_per_s']:.0f} tok/s vs raw full forward {fp['raw_tokens_per_s']:.0f} "
                  f"tok/s -> {fp['ratio']:.3f} (episodes one by one: {fp['one_by_one_tokens_per_s']:.0f} tok/s, "
                  f"{fp['one_by_one_ratio']:.3f}); beyond the scoring: "
                  + ", ".join(f"{k} {v:.2f} us/token" for k, v in fp["beyond_scoring_us_per_token"].items()))
        if "sampler" in res:
            sp = res["sampler"]
            ours = ", ".join(f"{m} {v:.0f}" for m, v in sp["ours_tokens_per_s"].items())
            gen = ", ".join(f"{m} {v:.0f}" for m, v in sp["generate_tokens_per_s"].items())
            vs = ", ".join(f"{m} {v:.2f}x" for m, v in sp["sampler_vs_generate"].items() if v is not None)
            print(f"sampler (batch {sp['batch']}, {sp['new_tokens']} tokens), tok/s: ours {ours}; generate() {gen}; "
                  f"ours / generate() {vs}")
        if "env_step_modes" in res:
            em = res["env_step_modes"]
            rows = ", ".join(f"{m} {v:.0f} ({res['compiled_vs_eager']['env_step'][m]:.2f}x)"
                             for m, v in em["env_tokens_per_s"].items())
            print(f"env step by decode mode (batch {em['batch']}), tok/s: {rows} vs the eager raw step "
                  f"{em['raw_eager_tokens_per_s']:.0f}")
        if "naive" in res:
            nv = res["naive"]
            print(f"ours vs naive re-encode: {nv['ours_tokens_per_s']:.0f} vs {nv['naive_tokens_per_s']:.0f} tok/s "
                  f"-> {nv['ratio']:.1f}x")
        if "growth_seconds_per_token" in res:
            g = res["growth_seconds_per_token"]
            print(f"per-token cost by episode length (batch {res['growth_batch']}): " + ", ".join(
                f"{k}: env {v * 1e6:.0f} us / raw {g['raw'][k] * 1e6:.0f} us" for k, v in g["env"].items()))
            gl = res["growth_longest_over_64"]
            print(f"growth {gl['length']} / 64 tokens: env {gl['env']:.2f}x, raw forward {gl['raw']:.2f}x")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer steps and sizes (under 3 minutes on 2 cores)")
    p.add_argument("--smoke", action="store_true",
                   help="the smallest run through every stage, for tests and dry runs (its figures mean nothing)")
    p.add_argument("--json", type=Path, default=None,
                   help="write the figures here (rewritten after every stage, with complete=false until the end)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default=None, help="e.g. bfloat16 on a GPU")
    p.add_argument("--models", default="shipped,gpt2-12x768",
                   help=f"comma-separated, from: {', '.join(MODELS)} (the qwen2 shapes are randomly initialised "
                        "from their configs, for GPUs; proxy-152k is their 151,936-token vocabulary on a small "
                        "trunk, for CPUs) (default: shipped,gpt2-12x768)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--decode-modes", default=None,
                   help="comma-separated static decode modes to time against eager, for the sampler and the env "
                        f"step, from: {', '.join(m for m in DECODE_MODES if m != 'eager')}; 'none' for none "
                        "(default: cudagraph,compiled on CUDA, none on a CPU, where compiling takes ~40 s per shape)")
    p.add_argument("--stages", default=",".join(STAGES),
                   help=f"comma-separated stages to run, from: {', '.join(STAGES)} (default: all)")
    p.add_argument("--bandwidth-gbs", type=float, default=None,
                   help="GPU memory bandwidth in GB/s for the weight-bandwidth fractions (default: from the device "
                        "name for H100/H200/A100, else none)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    spec = args.decode_modes or ("cudagraph,compiled" if device.type == "cuda" else "none")
    modes = tuple(m for m in spec.split(",") if m and m != "none")
    try:
        for m in modes:
            if check_decode(m, device) == "eager":
                raise ValueError("eager is always timed: name only static modes in --decode-modes")
    except ValueError as e:
        p.error(str(e))
    stages = tuple(st for st in STAGES if st in args.stages.split(","))
    unknown = set(args.stages.split(",")) - set(STAGES)
    if unknown:
        p.error(f"unknown stages {sorted(unknown)}: expected some of {', '.join(STAGES)}")
    names = args.models.split(",")
    for name in names:
        if name not in MODELS:
            p.error(f"unknown model {name!r}: expected one of {', '.join(MODELS)}")
    bandwidth = args.bandwidth_gbs or (_known_bandwidth(torch.cuda.get_device_name(0)) if device.type == "cuda"
                                       else None)
    tok = load_tokenizer("zoo:teacher")
    common = {"tokenizer": tok, "device": device, "max_prompt_tokens": 256}
    prewarm(wait=True)  # the answer checker's one-time start-up (a core for ~2 s) must not land in a timing
    results: dict = {}
    start = time.perf_counter()
    out = {
        "complete": False,
        "models": results,
        "quick": args.quick,
        "smoke": args.smoke,
        "decode_modes": list(modes),
        "seconds": None,
        "machine": {"platform": platform.platform(), "processor": _cpu_model(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "device": str(device), "dtype": args.dtype or "model default", "bandwidth_gbs": bandwidth,
                    "cuda": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
                    "torch": torch.__version__, "transformers": transformers.__version__,
                    "date": time.strftime("%Y-%m-%d")},
    }

    def save() -> None:
        """The figures so far (a run stopped by a time limit keeps the stages it finished)."""
        if args.json is not None:
            out["seconds"] = time.perf_counter() - start
            write_json_atomic(args.json, out)

    n_stages = len(stages) - ("modes" in stages and not modes)
    with tqdm(total=n_stages * len(names), desc="throughput", file=sys.stderr) as bar:
        for name in names:
            t0 = time.perf_counter()
            model = MODELS[name](device, args.dtype)
            results[name] = {"build_seconds": time.perf_counter() - t0}
            bench_model(name, {**common, "teacher": model}, args.quick, bar, modes=modes, bandwidth_gbs=bandwidth,
                        smoke=args.smoke, res=results[name], save=save, stages=stages)
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
    print_table(results)
    primary = results.get("shipped") or next(iter(results.values()))
    out.update({k: primary.get(k) for k in ("env_vs_raw", "fast_vs_raw", "ours_vs_naive_256", "growth_1024_over_64")})
    out["stages"] = list(stages)
    out["complete"] = True
    out["seconds"] = time.perf_counter() - start
    print(f"\ntotal {out['seconds']:.0f} s")
    write_result_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
