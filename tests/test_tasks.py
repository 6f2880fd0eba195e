"""Dataset loading: GSM8K jsonl, malformed lines, missing files, unknown names (the data folder, import, fetch
and the split rules for paths are in test_data.py)."""

import json

import numpy as np
import pytest

from llm_cmdp_env.data.registry import dataset_path
from llm_cmdp_env.tasks import load_task
from llm_cmdp_env.tasks.gsm8k import gsm8k_path
from llm_cmdp_env.tasks.jsonl import JsonlTask

GSM8K_TEST = dataset_path("gsm8k", "test")


@pytest.mark.skipif(GSM8K_TEST is None, reason="shared GSM8K data not found")
def test_gsm8k_from_shared_jsonl():
    task = load_task("gsm8k", "test")
    assert len(task) == 1319
    first = task[0]
    assert first.answer == "18" and first.question.startswith("Janet")
    assert first.source == "gsm8k"
    assert load_task(str(GSM8K_TEST))[0].answer == "18"  # the file itself (split=None)
    assert gsm8k_path("test") == GSM8K_TEST  # the older helper is the same search
    rng1, rng2 = np.random.default_rng(0), np.random.default_rng(0)
    assert task.sample(rng1) == task.sample(rng2)


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"question": "q?", "answer": "1 + 1 = 2\n#### 2"})
    path.write_text(good + "\n" + good + "\n{not json\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:3"):
        JsonlTask(path)
    path.write_text(good + "\n" + json.dumps({"question": "q?", "answer": "no final line"}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        JsonlTask(path)
    path.write_text(json.dumps({"question": "q?"}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        JsonlTask(path)


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_task(str(tmp_path / "nope.jsonl"))
    with pytest.raises(ValueError, match="arithmetic"):
        load_task("mnist")
    with pytest.raises(ValueError, match=r"split='validation'.*\('train', 'test'\)"):
        load_task("gsm8k", "validation")
    with pytest.raises(ValueError, match="split must be one of"):
        load_task("arithmetic", "dev")
