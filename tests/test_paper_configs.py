"""The shipped paper configs follow the authors' budget and schedule; `loss_tokens` picks the trained tokens."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest

from wmss.config import load_config, read_yaml
from wmss.data.encode import FEATURES, IGNORE_INDEX, with_loss_tokens
from wmss.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("size", ["4b", "8b"])
def test_paper_configs_follow_the_authors_run(tmp_path, size):
    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "p", "completion": "c"}\n')
    config = load_config(CONFIGS / f"paper_qwen3_{size}.yaml", [f"data.train={data}"])
    assert config.model.base == f"Qwen/Qwen3-{size.upper()}-Base"
    assert config.model.dtype == "auto" and not config.model.low_precision_training  # float32 masters
    assert config.data.max_length == 4096 and config.data.system_prompt == "reasoning"
    for stage in (config.sft, config.joint):
        assert stage.num_train_epochs == 1  # 1 + 1: the paper's "total of 2 epochs"
        assert stage.per_device_train_batch_size * stage.gradient_accumulation_steps * 8 == 256
        assert (stage.learning_rate, stage.lr_scheduler_type, stage.warmup_steps) == (1e-5, "linear", 0)
        assert stage.bf16
    assert (config.sft.loss_tokens, config.joint.loss_tokens) == ("completion", "all")
    assert (config.wmss.alpha, config.wmss.beta, config.wmss.gamma, config.wmss.lam) == (0.1, 0.8, 0.1, 0.5)


def test_8b_config_is_the_4b_one_with_another_model():
    small, large = read_yaml(CONFIGS / "paper_qwen3_4b.yaml"), read_yaml(CONFIGS / "paper_qwen3_8b.yaml")
    for config in (small, large):
        del config["model"]["base"], config["pipeline"]["output_dir"]
    assert small == large


def test_loss_tokens_all_labels_every_token_and_completion_keeps_the_mask():
    encoded = datasets.Dataset.from_dict(
        {
            "idx": [0, 1],
            "input_ids": [[5, 6, 7, 8], [9, 10]],
            "labels": [[IGNORE_INDEX, IGNORE_INDEX, 7, 8], [IGNORE_INDEX, 10]],
        },
        features=FEATURES,
    )
    assert with_loss_tokens(encoded, "completion") is encoded
    everything = with_loss_tokens(encoded, "all")
    assert everything["labels"] == everything["input_ids"] and everything["idx"] == [0, 1]
    with pytest.raises(ValueError, match="loss_tokens"):
        with_loss_tokens(encoded, "prompt")
    with pytest.raises(ConfigError, match=r"'joint\.loss_tokens' must be one of completion, all"):
        load_config(None, ["joint.loss_tokens=prompt"])
