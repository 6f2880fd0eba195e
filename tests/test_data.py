"""Datasets by name (llm_cmdp_env.data) and ``llm-cmdp data``: search order, import, fetch, list, split rules.

No network: fetch is tested offline, without ``datasets``, and against a stand-in ``datasets`` module.
"""

import json
import sys
import types
from pathlib import Path

import pytest

from llm_cmdp_env import cli, data
from llm_cmdp_env.common import atomic_io
from llm_cmdp_env.judge.verify import check_answer
from llm_cmdp_env.tasks import load_task

SHARED = data.dev_data_dir()
needs_shared = pytest.mark.skipif(not (SHARED / "gsm8k" / "test.jsonl").is_file()
                                  or not (SHARED / "math500" / "test.jsonl").is_file(),
                                  reason="shared GSM8K/MATH-500 data not found beside the repository")


def gsm8k_line(q: str, n: int) -> str:
    return json.dumps({"question": q, "answer": f"{n} - 0 = {n}\n#### {n}"})


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@needs_shared
def test_import_shared_folder_then_load_by_name(data_dir, capsys):
    with pytest.raises(FileNotFoundError):  # nothing there yet: shared/ is not searched when the variable is set
        load_task("gsm8k", "test")
    written = data.import_dataset("gsm8k", SHARED / "gsm8k")
    assert [(f.split, f.status, f.lines) for f in written] == [("train", "written", 7473), ("test", "written", 1319)]
    for name in ("train.jsonl", "test.jsonl"):  # bytes copied unchanged
        assert (data_dir / "gsm8k" / name).read_bytes() == (SHARED / "gsm8k" / name).read_bytes()
    task = load_task("gsm8k", "test")
    assert len(task) == 1319 and task.path == data_dir / "gsm8k" / "test.jsonl"
    assert task[0].answer == "18" and task[0].source == "gsm8k" and task[0].index == 0
    assert len(load_task("gsm8k")) == 7473  # split=None: the dataset's default split, train
    assert [f.status for f in data.import_dataset("gsm8k", SHARED / "gsm8k")] == ["unchanged", "unchanged"]

    # through the CLI: a single file whose name is its split
    assert cli.main(["data", "import", "math500", str(SHARED / "math500" / "test.jsonl")]) == 0
    assert "written" in capsys.readouterr().out
    assert len(load_task("math500", "test")) == 500


def test_malformed_line_names_file_and_line_and_writes_nothing(data_dir, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(gsm8k_line("q1?", 1) + "\n" + json.dumps({"question": "q2?", "answer": "no final line"}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: .*####"):
        data.import_dataset("gsm8k", bad, split="train")
    assert cli.main(["data", "import", "gsm8k", str(bad), "--split", "train"]) == 1
    err = capsys.readouterr().err
    assert "bad.jsonl:2" in err and "Traceback" not in err
    bad.write_text(gsm8k_line("q1?", 1) + "\n\n{not json\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:3"):
        data.import_dataset("gsm8k", bad, split="train")
    assert files_under(data_dir) == []


def test_import_refuses_to_overwrite_a_different_file_unless_forced(data_dir, tmp_path, capsys):
    a, b = tmp_path / "a" / "test.jsonl", tmp_path / "b" / "test.jsonl"
    a.parent.mkdir(), b.parent.mkdir()
    a.write_text(gsm8k_line("first?", 1) + "\n")
    b.write_text(gsm8k_line("second?", 2) + "\n" + gsm8k_line("third?", 3) + "\n")
    assert [f.status for f in data.import_dataset("gsm8k", a)] == ["written"]
    with pytest.raises(FileExistsError, match="--force"):
        data.import_dataset("gsm8k", b)
    assert cli.main(["data", "import", "gsm8k", str(b)]) == 1
    assert "--force" in capsys.readouterr().err
    assert len(load_task("gsm8k", "test")) == 1
    assert cli.main(["data", "import", "gsm8k", str(b), "--force"]) == 0
    assert "replaced" in capsys.readouterr().out
    assert [p.answer for p in load_task("gsm8k", "test").problems] == ["2", "3"]
    assert files_under(data_dir) == [data_dir / "gsm8k" / "test.jsonl"]  # no temp file left


def test_import_split_rules(data_dir, tmp_path):
    test_file = tmp_path / "test.jsonl"
    test_file.write_text(gsm8k_line("q?", 1) + "\n")
    with pytest.raises(ValueError, match="'test' split"):  # a file named for a split is that split only
        data.import_dataset("gsm8k", test_file, split="train")
    other = tmp_path / "mine.jsonl"
    other.write_text(gsm8k_line("q?", 1) + "\n")
    with pytest.raises(ValueError, match="--split"):
        data.import_dataset("gsm8k", other)
    with pytest.raises(ValueError, match=r"math500.*\('test',\)"):
        data.import_dataset("math500", other, split="train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds none of train.jsonl, test.jsonl"):
        data.import_dataset("gsm8k", tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="import source not found"):
        data.import_dataset("gsm8k", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="dataset name must be"):  # any other name is your own dataset
        data.import_dataset("../mnist", other, split="train")
    with pytest.raises(ValueError, match="'arithmetic'"):
        data.import_dataset("arithmetic", other, split="train")
    assert files_under(data_dir) == []


def test_write_is_atomic(data_dir, tmp_path, monkeypatch):
    src = tmp_path / "test.jsonl"
    src.write_text(gsm8k_line("q?", 1) + "\n")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(atomic_io.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        data.import_dataset("gsm8k", src)
    assert files_under(data_dir) == []  # neither the target nor the temp file


def test_missing_dataset_lists_every_path_and_the_fix(data_dir, tmp_path, monkeypatch):
    alias = tmp_path / "old_gsm8k"
    monkeypatch.setenv("LLM_CMDP_GSM8K_DIR", str(alias))
    with pytest.raises(FileNotFoundError) as e:
        load_task("gsm8k", "test")
    msg = str(e.value)
    first, second = str(alias / "test.jsonl"), str(data_dir / "gsm8k" / "test.jsonl")
    assert first in msg and second in msg and msg.index(first) < msg.index(second)
    assert "llm-cmdp data fetch gsm8k" in msg and "llm-cmdp data import gsm8k PATH" in msg
    with pytest.raises(ValueError, match=r"split='train' is not a split of dataset 'math500'; it has \('test',\)"):
        load_task("math500", "train")
    with pytest.raises(ValueError, match="split='validation'.*gsm8k"):
        load_task("gsm8k", "validation")


def test_search_order_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("LLM_CMDP_DATA_DIR", raising=False)
    monkeypatch.delenv("LLM_CMDP_GSM8K_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    user = tmp_path / "cache" / "llm-cmdp-env" / "data"
    dirs = [d for d, _ in data.search_dirs()]
    assert dirs[0] == user and data.data_dir() == user
    assert dirs[1:] == ([SHARED] if SHARED.is_dir() else [])  # the development fallback comes after
    (user / "gsm8k").mkdir(parents=True)
    (user / "gsm8k" / "test.jsonl").write_text(gsm8k_line("mine?", 7) + "\n")
    assert [p.answer for p in load_task("gsm8k", "test").problems] == ["7"]  # the user folder wins


def test_gsm8k_dir_alias_still_works(data_dir, tmp_path, monkeypatch):
    alias = tmp_path / "old"
    alias.mkdir()
    (alias / "train.jsonl").write_text(gsm8k_line("old?", 5) + "\n")
    monkeypatch.setenv("LLM_CMDP_GSM8K_DIR", str(alias))
    task = load_task("gsm8k", "train")
    assert task.path == alias / "train.jsonl" and task[0].answer == "5"


def test_fetch_offline_fails_fast_with_a_message(data_dir, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setitem(sys.modules, "datasets", None)  # were it imported, the message would say "not installed"
    assert cli.main(["data", "fetch", "gsm8k"]) == 1
    out = capsys.readouterr()
    assert "offline" in out.err and "llm-cmdp data import gsm8k PATH" in out.err
    assert "Traceback" not in out.err + out.out
    assert files_under(data_dir) == []


def test_fetch_without_datasets_installed(data_dir, monkeypatch, capsys):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setitem(sys.modules, "datasets", None)
    assert cli.main(["data", "fetch", "math500"]) == 1
    err = capsys.readouterr().err
    assert "`datasets` package is not installed" in err and "pip install datasets" in err
    assert files_under(data_dir) == []


def fake_datasets(monkeypatch, rows_by_split):
    """Put a stand-in ``datasets`` module in sys.modules whose load_dataset returns the given rows or raises."""
    calls = []

    def load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        rows = rows_by_split[split]
        if isinstance(rows, Exception):
            raise rows
        return rows

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    return calls


def test_fetch_writes_validated_jsonl_and_nothing_on_failure(data_dir, monkeypatch):
    good = [{"question": "q?", "answer": "1 + 1 = 2\n#### 2"}]
    calls = fake_datasets(monkeypatch, {"train": good, "test": ConnectionError("no route to host")})
    with pytest.raises(data.FetchError, match="openai/gsm8k.*no route to host.*llm-cmdp data import gsm8k"):
        data.fetch_dataset("gsm8k")
    assert files_under(data_dir) == []  # train downloaded fine, but nothing is written unless every split is
    fake_datasets(monkeypatch, {"train": good, "test": [{"question": "q?", "answer": "no hashes"}]})
    with pytest.raises(ValueError, match=r"openai/gsm8k\[test\]:1"):
        data.fetch_dataset("gsm8k")
    assert files_under(data_dir) == []
    calls = fake_datasets(monkeypatch, {"train": good, "test": good * 3})
    written = data.fetch_dataset("gsm8k")
    assert calls == [("openai/gsm8k", "main", "train"), ("openai/gsm8k", "main", "test")]
    assert [(f.split, f.lines, f.status) for f in written] == [("train", 1, "written"), ("test", 3, "written")]
    assert load_task("gsm8k", "test")[2].answer == "2"
    calls = fake_datasets(monkeypatch, {"test": [{"problem": "p", "answer": "\\frac12", "solution": "s"}]})
    data.fetch_dataset("math500")
    assert calls == [("HuggingFaceH4/MATH-500", None, "test")]
    assert load_task("math500")[0].answer == "\\frac12"


@needs_shared
def test_math500_loads_500_problems_whose_answers_match_their_solutions(data_dir):
    data.import_dataset("math500", SHARED / "math500")
    task = load_task("math500")  # split=None: its only split, test
    assert len(task) == 500 and task.split == "test"
    rows = [json.loads(line) for line in (SHARED / "math500" / "test.jsonl").read_text().splitlines()]
    for i in (0, 1, 499):
        p = task[i]
        assert (p.question, p.answer, p.solution) == (rows[i]["problem"], rows[i]["answer"], rows[i]["solution"])
        assert p.source == "math500" and p.index == i
    for p in task.problems[:10]:  # the reference answer equals the \boxed{} of its own worked solution
        assert check_answer(p.solution, p.answer).correct, (p.index, p.answer)
    assert not check_answer(task[0].solution, task[1].answer).correct  # and the judge is not vacuous


def test_split_rules_for_paths(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "train.jsonl").write_text(gsm8k_line("train?", 1) + "\n")
    (folder / "test.jsonl").write_text(gsm8k_line("test?", 2) + "\n")
    assert load_task(str(folder))[0].answer == "1"  # a folder: split=None means train
    assert load_task(folder, "test")[0].answer == "2"
    with pytest.raises(FileNotFoundError, match=r"no validation\.jsonl.*\('test', 'train'\)"):
        load_task(folder, "validation")
    with pytest.raises(ValueError, match="split must be a split name"):
        load_task(folder, "../train")

    test_file = folder / "test.jsonl"  # a file named for a split is that split only
    assert load_task(str(test_file))[0].answer == "2"
    assert load_task(str(test_file), "test")[0].answer == "2"
    with pytest.raises(ValueError, match="is the 'test' split.*reuse"):
        load_task(str(test_file), "train")

    single = tmp_path / "problems.jsonl"  # any other file: train = 9 in 10 problems, test = every 10th
    single.write_text("\n".join(gsm8k_line(f"single {i}?", i) for i in range(25)) + "\n")
    train, test = load_task(str(single)), load_task(str(single), "test")
    assert [p.index for p in test] == [9, 19] and [p.answer for p in test] == ["9", "19"]
    assert [p.index for p in train] == [i for i in range(25) if i not in (9, 19)]
    assert [p.index for p in load_task(str(single), "train")] == [p.index for p in train]
    with pytest.raises(ValueError, match="not 'validation'"):
        load_task(str(single), "validation")
    single.write_text(gsm8k_line("single?", 3) + "\n")  # too short to hold a test split out
    assert load_task(str(single))[0].answer == "3"
    with pytest.raises(ValueError, match="too few to hold out"):
        load_task(str(single), "test")

    math_file = tmp_path / "math.jsonl"  # MATH-style lines are accepted too
    math_file.write_text(json.dumps({"problem": "Simplify 2/4.", "answer": "\\frac{1}{2}"}) + "\n")
    p = load_task(str(math_file))[0]
    assert (p.question, p.answer, p.solution) == ("Simplify 2/4.", "\\frac{1}{2}", "")
    math_file.write_text(json.dumps({"text": "?"}) + "\n")
    with pytest.raises(ValueError, match=r"math\.jsonl:1: .*'question' \+ 'answer'.*'problem' \+ 'answer'"):
        load_task(str(math_file))
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_task(str(tmp_path / "nope.jsonl"))


def test_data_list_shows_folders_files_and_line_counts(data_dir, tmp_path, capsys):
    src = tmp_path / "test.jsonl"
    src.write_text("\n".join(gsm8k_line(f"q{i}?", i) for i in range(3)) + "\n")
    data.import_dataset("gsm8k", src)
    assert cli.main(["data", "list"]) == 0
    out = capsys.readouterr().out
    folders, files = out.split("datasets:\n")
    assert f"{data_dir}   ($LLM_CMDP_DATA_DIR)" in folders
    lines = {tuple(line.split()[:2]): line for line in files.splitlines()}
    assert set(lines) == {("gsm8k", "train"), ("gsm8k", "test"), ("math500", "test")}
    assert "3 lines" in lines[("gsm8k", "test")] and str(data_dir / "gsm8k" / "test.jsonl") in lines[("gsm8k", "test")]
    assert "missing" in lines[("gsm8k", "train")] and "llm-cmdp data fetch gsm8k" in lines[("gsm8k", "train")]
    assert "missing" in lines[("math500", "test")]


def test_data_help_shows_defaults(capsys):
    for cmd in ("import", "fetch"):
        with pytest.raises(SystemExit):
            cli.main(["data", cmd, "--help"])
        out = capsys.readouterr().out
        assert "--split" in out and "--force" in out and out.count("default") >= 2
