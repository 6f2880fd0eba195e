"""The architecture holds: layers import downward only, no import cycles, the env package never imports the agent
(not even lazily: the agent's commands reach the CLI through an entry point), and the worked example of
docs/architecture.md (a new constraint in one class and one registry call) runs in a single and a vector env."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from llm_cmdp_env.common.threads import AdaptiveThreads
from tests.fake_cmdp import Episode, FakeCMDP

ROOT = Path(__file__).resolve().parents[1]

#: package or module -> layer (docs/architecture.md); the longest matching prefix wins
LAYERS = {
    "llm_cmdp_env.common": 0,
    **{f"llm_cmdp_env.{m}": 1 for m in ("data", "tasks", "judge", "divergences", "models", "scoring", "zoo")},
    "llm_cmdp_env.episode": 2,
    "llm_cmdp_env.envs": 3,
    "llm_cmdp_env.replay": 4,
    "llm_cmdp_env.wrappers": 4,
    **{f"llm_cmdp_env.{m}": 5 for m in ("registration", "interop", "cli")},
    "llm_cmdp_env": 5,  # the package root (its lazy attributes reach into envs/)
    "llm_cmdp_agents.engine": 6,
    "llm_cmdp_agents.algos": 7,
    "llm_cmdp_agents.run": 8,
    "llm_cmdp_agents.experiments": 9,
    "llm_cmdp_agents.interop": 9,
    "llm_cmdp_agents.cli": 10,  # the agent's commands, added to llm_cmdp_env.cli through an entry point
    "llm_cmdp_agents": 10,  # the package root (its lazy attributes reach into run/ and engine/)
}
PACKAGES = {"llm_cmdp_env": ROOT / "llm_cmdp_env", "llm_cmdp_agents": ROOT / "agents"}


def _layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def _modules() -> dict[str, Path]:
    out = {}
    for name, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [name, *path.relative_to(folder).with_suffix("").parts]
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
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


def test_constraint_rules_are_run_by_the_adapters_not_subclassed_or_mutated():
    """A constraint is one rule run by two generic adapters: the named classes are made by ``named_wrappers``, not
    written out as subclasses that only set their rule, and no frozen dataclass is mutated behind its back."""
    for path in sorted((ROOT / "llm_cmdp_env" / "wrappers").glob("*.py")):
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


def _doc_example(name: str) -> str:
    """The code block marked ``<!-- example: name -->`` in docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    m = re.search(rf"<!-- example: {name} -->\s*```python\n(.*?)```", text, re.S)
    assert m, f"the worked example {name!r} of docs/architecture.md is missing"
    return m.group(1)


@pytest.fixture()
def custom_constraint():
    from llm_cmdp_env.wrappers.factory import CONSTRAINTS, REGISTRY

    namespace: dict = {"__name__": "architecture_example"}
    code = compile(_doc_example("custom-constraint"), "docs/architecture.md", "exec", dont_inherit=True)  # as a reader
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
    monkeypatch.setattr("llm_cmdp_env.common.threads.usable_cores", lambda: 2)
    samples = iter([(0, 0, 0), (200, 100, 0),     # 1 core busy elsewhere (we used nothing) -> 1 thread
                    (400, 300, 0),                 # quiet -> 2
                    (600, 400, 100),               # busy 100 jiffies of 200, all ours -> 2
                    (800, 400, 100)])              # both cores busy elsewhere -> 1 (never 0)
    calls = []
    at = AdaptiveThreads(set_threads=calls.append, sample=lambda: next(samples))
    assert [at.adjust() for _ in range(4)] == [1, 2, 2, 1]
    assert calls == [1, 2, 1]  # set only when it changes


def _defines(path: Path, symbol: str) -> bool:
    """Whether module ``path`` defines ``symbol`` (``name`` at module level, or ``Class.attribute``)."""
    tree = ast.parse(path.read_text())

    def names(body: list[ast.stmt]) -> dict[str, ast.AST]:
        out: dict[str, ast.AST] = {}
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out[node.name] = node
            elif isinstance(node, ast.Assign):
                out.update({t.id: node for t in node.targets if isinstance(t, ast.Name)})
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                out[node.target.id] = node
        return out

    scope: ast.AST | None = None
    body = tree.body
    for part in symbol.split("."):
        scope = names(body).get(part)
        if scope is None:
            return False
        body = getattr(scope, "body", [])
    return True


def test_the_walkthrough_names_code_that_exists():
    """docs/architecture.md cites code by symbol (``path.py::name`` or ``path.py::Class.method``): every cited file
    exists and defines what is named, so a refactor that moves or renames code fails here instead of leaving the
    doc wrong."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    cited = re.findall(r"`([\w./-]+\.py)::([\w.]+)`", text)
    assert len(cited) > 60, len(cited)
    missing = [f"{path}::{name}" for path, name in cited if not (ROOT / path).is_file()
               or not _defines(ROOT / path, name)]
    assert not missing, missing


@pytest.fixture()
def custom_algorithm():
    from llm_cmdp_agents.algos.registry import ALGORITHMS

    namespace: dict = {"__name__": "architecture_algorithm_example"}
    exec(compile(_doc_example("custom-algorithm"), "docs/architecture.md", "exec", dont_inherit=True), namespace)  # noqa: S102
    yield namespace["ReinforceConfig"]
    ALGORITHMS.pop("reinforce", None)


def test_a_new_algorithm_is_one_module_and_trains_through_the_trainer_and_the_cli(custom_algorithm, tiny_dir,
                                                                               tiny_env_kwargs, tmp_path, capsys):
    """The worked example of docs/architecture.md (one module: config, update, registration) trains two updates
    through ``Trainer`` and through ``llm-cmdp train --algo``, gets its own flags under its own ``--help`` group, and
    its options are refused for another algorithm."""
    import csv

    from llm_cmdp_agents.algos import TrainConfig
    from llm_cmdp_agents.engine.policy import LLMPolicy
    from llm_cmdp_agents.run.trainer import Trainer
    from llm_cmdp_env import cli
    from tests.test_agent_helpers import tiny_env

    cfg = TrainConfig(algo="reinforce", baseline=False, updates=2, prompts_per_update=2, minibatch_size=2,
                      checkpoint_every=0)
    assert isinstance(cfg, custom_algorithm) and cfg.baseline is False
    policy = LLMPolicy(str(tiny_dir / "student"), device="cpu", value_head=False)
    before = {k: v.clone() for k, v in policy.trainable_state_dict().items()}
    history = Trainer(tiny_env(tiny_env_kwargs, "distill"), policy, cfg, progress=False).train()  # reward: -cost
    assert [row["update"] for row in history] == [1, 2] and all("pg_loss" in row for row in history)
    assert any(not (before[k] == v).all() for k, v in policy.trainable_state_dict().items())

    out = tmp_path / "run"
    args = ["train", "--teacher", str(tiny_dir / "teacher"), "--model", str(tiny_dir / "student"), "--max-new-tokens",
            "6", "--max-prompt-tokens", "160", "--algo", "reinforce", "--no-baseline", "--updates", "2",
            "--prompts-per-update", "2", "--eval-n", "0", "--threads", "1", "--no-progress", "--out", str(out)]
    assert cli.main(args) == 0
    assert json.loads((out / "config.json").read_text())["train"]["baseline"] is False
    assert [r["update"] for r in csv.DictReader((out / "progress.csv").open())] == ["1", "2"]
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    shown = capsys.readouterr().out
    assert "options of --algo reinforce:" in shown and "--baseline, --no-baseline" in shown
    with pytest.raises(SystemExit, match="--baseline applies to --algo reinforce only"):
        cli.main([*args[:-2], "--algo", "ppo", "--out", str(tmp_path / "other")])
    with pytest.raises(ValueError, match="'baseline' is an option of algo reinforce"):
        TrainConfig(algo="ppo", baseline=True)


def test_nothing_outside_a_registry_decides_by_a_registered_name():
    """No comparison of an algorithm, constraint or divergence variable with one of the registered names (an
    ``algo`` tested against ``"gkd"``, a ``constraint`` against ``"saute"``) outside the module that registers it:
    the registries' specs say what a name means (value head, budget use, what it needs from the student)."""
    from llm_cmdp_agents.algos.registry import ALGORITHMS
    from llm_cmdp_env.divergences import DIVERGENCES
    from llm_cmdp_env.wrappers.factory import REGISTRY

    names = {"algo": set(ALGORITHMS), "constraint": set(REGISTRY) - {"none"}, "divergence": set(DIVERGENCES)}
    owners = {"algo": ("agents/algos/",), "constraint": ("llm_cmdp_env/wrappers/",),
              "divergence": ("llm_cmdp_env/divergences.py",)}
    found = []
    for path in _modules().values():
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            idents = {ast.unparse(s).split(".")[-1].split("[")[0] for s in sides}
            consts = {c.value for s in sides for c in ast.walk(s) if isinstance(c, ast.Constant)
                      and isinstance(c.value, str)}
            for kind, registered in names.items():
                if any(kind in i for i in idents) and consts & registered and not rel.startswith(owners[kind]):
                    found.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "\n".join(found)


def test_no_module_writes_another_modules_private_attributes():
    """A caller that needs an object's state goes through a public name: an assignment to ``x._name`` is only
    ever to ``self``/``cls`` (dunders aside)."""
    found = []
    for path in _modules().values():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, (ast.AugAssign, ast.AnnAssign)) else []
            for t in targets:
                if (isinstance(t, ast.Attribute) and t.attr.startswith("_") and not t.attr.startswith("__")
                        and not (isinstance(t.value, ast.Name) and t.value.id in ("self", "cls"))):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(t)}")
    assert not found, "\n".join(found)


def test_every_package_is_in_the_wheel(tmp_path):
    """pyproject lists every package folder, and the built wheel holds them all: each subpackage imports from the
    unpacked wheel alone (the checkout and its editable install out of the way)."""
    import zipfile

    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {m for m, p in _modules().items() if p.name == "__init__.py"}
    assert listed == folders, (sorted(folders - listed), sorted(listed - folders))
    import shutil

    source = tmp_path / "source"  # built from a copy: the build leaves build/ and *.egg-info/ behind
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "llm_cmdp_env", "agents"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(
            ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                           if (ROOT / name).is_dir() else {}))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                          str(tmp_path), str(source)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next(tmp_path.glob("llm_cmdp_env-*.whl"))
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(wheel).extractall(unpacked)
    site = [p for p in sys.path if p.endswith("site-packages")]
    code = ("import importlib, sys\n"
            f"sys.path[:0] = [{str(unpacked)!r}, *{site!r}]\n"
            f"for m in {sorted(folders)!r}:\n"
            "    mod = importlib.import_module(m)\n"
            f"    assert mod.__file__.startswith({str(unpacked)!r}), (m, mod.__file__)\n"
            "print('ok')\n")
    res = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_the_docs_name_files_that_exist():
    """Every repository path the README and docs name (``llm_cmdp_env/...``, ``agents/...``, ``benchmarks/...``,
    ``examples/...``, ``tests/...``, ``docs/...``, in backticks or as a link) exists, so moving code cannot leave a
    doc pointing nowhere. ``path.py::name`` citations are checked for the name too (architecture.md above)."""
    roots = ("llm_cmdp_env/", "agents/", "benchmarks/", "examples/", "tests/", "docs/")
    missing = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        named = re.findall(r"`([\w./-]+)(?:::[\w.]+)?`", text)
        named += [p.removeprefix("../") for p in re.findall(r"\]\(([^)#\s]+)", text) if not p.startswith("http")]
        for path in named:
            path = path.rstrip("/")
            if path.startswith(roots) and not (ROOT / path).exists() and not (ROOT / "docs" / path).exists():
                missing.append(f"{doc.name}: {path}")
    assert not missing, "\n".join(sorted(set(missing)))
