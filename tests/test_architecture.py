"""The architecture holds: layers import downward only, no import cycles, the env package never imports the agent
(not even lazily: the agent's commands reach the CLI through an entry point), and the worked example of
docs/architecture.md (a new constraint in one class and one registry call) runs in a single and a vector env."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from llm_cmdp_env.threads import AdaptiveThreads
from tests.fake_cmdp import Episode, FakeCMDP

ROOT = Path(__file__).resolve().parents[1]

#: module-name prefix -> layer (docs/architecture.md); the longest matching prefix wins
LAYERS = {
    **{f"llm_cmdp_env.{m}": 0 for m in ("validation", "arrays", "atomic_io", "interrupts", "threads", "hf_compat",
                                        "kv_cache", "decode_modes", "vector_info")},
    **{f"llm_cmdp_env.{m}": 1 for m in ("tasks", "data", "verify", "_verify_worker", "divergences", "models",
                                        "prompts", "scoring", "batched_scoring", "static_scoring", "cuda_graph",
                                        "actions", "zoo", "multiplier")},
    "llm_cmdp_env.core": 2,
    "llm_cmdp_env.envs": 3,
    "llm_cmdp_env.fast_path": 4,
    "llm_cmdp_env.side_by_side": 4,
    "llm_cmdp_env.wrappers": 4,
    **{f"llm_cmdp_env.{m}": 5 for m in ("registration", "demo", "trl_rewards", "cli")},
    "llm_cmdp_env": 5,  # the package root (its lazy attributes reach into envs/)
    "llm_cmdp_agents": 6,
    "llm_cmdp_agents.cli": 7,  # the agent's commands, added to llm_cmdp_env.cli through an entry point
}


def _layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / "llm_cmdp_env").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for path in sorted((ROOT / "agents").glob("*.py")):
        name = path.stem
        out["llm_cmdp_agents" if name == "__init__" else f"llm_cmdp_agents.{name}"] = path
    return out


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Project modules ``module`` imports anywhere in its file (lazy imports inside functions included)."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    type_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                 and "TYPE_CHECKING" in ast.unparse(block.test) for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in type_only:  # annotations only: never executed
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] in ("llm_cmdp_env", "llm_cmdp_agents"))
    return {n for n in found if n != module}


def test_layers_import_downward_only_and_without_cycles():
    mods = _modules()
    graph = {m: _imports(m, p, set(mods)) for m, p in mods.items()}
    upward = [f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
              for m, deps in graph.items() for d in deps if _layer(d) > _layer(m)]
    assert not upward, "\n".join(upward)
    # a package's __init__ re-exports its submodules; a submodule importing its own package's __init__ would be
    # a cycle, as would any other loop
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in graph.get(m, ()):
            if d not in graph:
                continue
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(d):], d]))
            if d not in state:
                visit(d, [*stack, d])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_the_wrappers_package_stays_slim():
    """Issue 20.3: the constraint code is one rule protocol run by two adapters, so the package stays small: at most
    1,600 lines and 20 public names; the named classes are made by ``named_wrappers``, not written out as subclasses
    that only set their rule; no frozen
    dataclass is mutated behind its back."""
    files = sorted((ROOT / "llm_cmdp_env" / "wrappers").glob("*.py"))
    lines = sum(len(p.read_text().splitlines()) for p in files)
    assert lines <= 1600, f"llm_cmdp_env/wrappers/ has {lines} lines (target <= 1,600)"
    import llm_cmdp_env.wrappers as w

    assert len(w.__all__) <= 20, w.__all__
    for path in files:
        text = path.read_text()
        assert "object.__setattr__" not in text and "__subclasses__" not in text, path.name
        tree = ast.parse(text)
        hand_written = [n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and any(
            ast.unparse(b) in ("ConstraintWrapper", "VectorConstraintWrapper") for b in n.bases)
            and not any(isinstance(f, ast.FunctionDef) for f in n.body)]  # a class that only names its rule
        assert not hand_written, f"{path.name}: {hand_written} (use named_wrappers)"


def test_the_env_package_never_imports_the_agent():
    mods = _modules()
    found = []
    for m, path in mods.items():
        if not m.startswith("llm_cmdp_env"):
            continue
        found += [f"{m} imports {d}" for d in _imports(m, path, set(mods)) if d.startswith("llm_cmdp_agents")]
        for node in ast.walk(ast.parse(path.read_text())):  # importlib.import_module("llm_cmdp_agents...") and kin
            if isinstance(node, ast.Call):
                found += [f"{m} names {a.value!r} in a call" for a in node.args if isinstance(a, ast.Constant)
                          and isinstance(a.value, str) and a.value.startswith("llm_cmdp_agents")]
    assert not found, "\n".join(found)
    # and at run time: every env module imported, the agent is not
    names = [m for m in mods if m.startswith("llm_cmdp_env") and not m.endswith("__main__")]
    code = ("import importlib, sys\n"
            f"for m in {names!r}:\n"
            "    try:\n        importlib.import_module(m)\n    except ImportError:\n        pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('llm_cmdp_agents')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_env_cli_stands_alone_and_the_agent_adds_its_commands(monkeypatch, capsys):
    from llm_cmdp_env import cli

    def commands(parser) -> list[str]:
        return list(next(a for a in parser._actions if a.dest == "command").choices)

    assert commands(cli.build_parser()) == ["demo", "zoo", "train", "eval", "compare", "bench", "plot", "data"]
    monkeypatch.setattr(cli, "command_plugins", lambda: [])  # no agent installed
    assert commands(cli.build_parser()) == ["demo", "zoo", "data"]
    assert cli.main(["data", "list"]) == 0
    assert "datasets:" in capsys.readouterr().out


def _example_code() -> str:
    text = (ROOT / "docs" / "architecture.md").read_text()
    m = re.search(r"<!-- example: custom-constraint -->\s*```python\n(.*?)```", text, re.S)
    assert m, "the worked example of docs/architecture.md is missing"
    return m.group(1)


@pytest.fixture()
def custom_constraint():
    from llm_cmdp_env.wrappers.factory import CONSTRAINTS, REGISTRY

    namespace: dict = {"__name__": "architecture_example"}
    code = compile(_example_code(), "docs/architecture.md", "exec", dont_inherit=True)  # run as a reader would
    exec(code, namespace)  # noqa: S102 - our own doc
    yield namespace["OverBudgetPenalty"]
    REGISTRY.pop("over-budget-penalty", None)
    CONSTRAINTS.pop("over-budget-penalty", None)


def test_the_worked_constraint_example_runs_single_and_vector(custom_constraint):
    from llm_cmdp_env.wrappers import apply_constraint, apply_vector_constraint
    from tests.fake_cmdp import run_episode

    # costs 1, 2, 3 with budget 2.5: C = 1, 3, 6, over budget from the 2nd token on; penalty 0.5
    env = apply_constraint(FakeCMDP([Episode([1.0, 2.0, 3.0], [0.0, 0.0, 1.0])]), "over-budget-penalty",
                           budget=2.5, penalty=0.5)
    rewards, infos, _, _ = run_episode(env)
    assert rewards == [0.0, -0.5, 1.0 - 0.5]
    assert [i["episode_cost"] for i in infos] == [1.0, 3.0, 6.0]
    assert [i["constraint_violated"] for i in infos] == [False, True, True]
    assert infos[-1]["episode"]["c"] == 6.0 and infos[-1]["episode"]["r"] == 0.0
    assert infos[-1]["episode"]["constraint_satisfied"] is False

    def fake():
        return FakeCMDP(vocab_size=5, max_steps=5)

    vec = apply_vector_constraint(gym.vector.SyncVectorEnv([fake] * 3), "over-budget-penalty", budget=2.0)
    ref = gym.vector.SyncVectorEnv([lambda: apply_constraint(fake(), "over-budget-penalty", budget=2.0)] * 3)
    vec.reset(seed=3)
    ref.reset(seed=3)
    rng = np.random.default_rng(0)
    penalised = 0
    for _ in range(40):
        actions = rng.integers(0, 5, 3)
        _, r_a, t_a, u_a, i_a = vec.step(actions)
        _, r_b, t_b, u_b, i_b = ref.step(actions)
        np.testing.assert_array_equal(r_a, r_b)
        np.testing.assert_array_equal(t_a | u_a, t_b | u_b)
        penalised += int((i_a.get("constraint_violated", np.zeros(3, bool)) & i_a.get("_constraint_violated",
                                                                                      np.zeros(3, bool))).sum())
    assert penalised > 5


def test_the_worked_example_is_a_constraint_name_of_gym_make(custom_constraint, tiny_env_kwargs):
    env = gym.make("MathDistill-v0", constraint="over-budget-penalty", budget=1.0, **tiny_env_kwargs)
    env.reset(seed=0)
    _, _, _, _, info = env.step(5)
    assert "episode_cost" in info and info["constraint_violated"] == (info["episode_cost"] > 1.0)


def test_adaptive_threads_follow_the_cores_others_leave_free(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr("llm_cmdp_env.threads.usable_cores", lambda: 2)
    samples = iter([(0, 0, 0), (200, 100, 0),     # 1 core busy elsewhere (we used nothing) -> 1 thread
                    (400, 300, 0),                 # quiet -> 2
                    (600, 400, 100),               # busy 100 jiffies of 200, all ours -> 2
                    (800, 400, 100)])              # both cores busy elsewhere -> 1 (never 0)
    calls = []
    at = AdaptiveThreads(set_threads=calls.append, sample=lambda: next(samples))
    assert [at.adjust() for _ in range(4)] == [1, 2, 2, 1]
    assert calls == [1, 2, 1]  # set only when it changes


def test_the_ppo_walkthrough_points_at_the_code_it_names():
    """docs/architecture.md's "One PPO update, top to bottom" cites ``file:line``: every cited line exists, and where a
    citation is followed by the name it points at (`` `file:line` `name` ``), that line holds the name; so a
    refactor that moves the code fails here instead of leaving the walkthrough wrong."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## One PPO update, top to bottom", 1)[1].split("\n## ", 1)[0]
    cite = re.compile(r"`((?:[\w./-]+\.(?:py|toml))?):(\d+)`(?: `([\w.]+)`)?")
    current, checked, named = None, 0, 0
    for m in cite.finditer(section):
        path, line, name = m.group(1) or None, int(m.group(2)), m.group(3)
        current = path or current
        assert current is not None, m.group(0)
        lines = (ROOT / current).read_text().splitlines()
        assert 1 <= line <= len(lines) and lines[line - 1].strip(), f"{current}:{line} is past the end or blank"
        if name and m.group(1):
            assert name.split(".")[-1] in lines[line - 1], f"{current}:{line} does not hold {name}: {lines[line - 1]!r}"
            named += 1
        checked += 1
    assert checked > 50 and named > 10, (checked, named)
