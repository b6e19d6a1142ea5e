"""WMSSTrainer: trains strong and weak with the mixed loss; its loss matches the reference mixed CE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM

from wmss.errors import ConfigError
from wmss.method.mixed_loss import mixed_logit_cross_entropy
from wmss.method.trainer import WMSSConfig, WMSSTrainer


def _dataset() -> Dataset:
    rows = [{"prompt": f"{a}+{b}=", "completion": f"{a + b}"} for a in range(4) for b in range(3)]
    return Dataset.from_list(rows)


def _args(tmp_path, **kw) -> WMSSConfig:
    defaults = {"save_strategy": "no"}
    return WMSSConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        max_steps=2,
        learning_rate=1e-2,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        seed=0,
        **(defaults | kw),
    )


def test_trainer_trains_both_branches_and_logs_norms(tmp_path, tiny_model_dir, tiny_model_dir_2, tokenizer):
    strong = AutoModelForCausalLM.from_pretrained(tiny_model_dir_2)
    before_s = [p.detach().clone() for p in strong.parameters()]
    trainer = WMSSTrainer(
        model=strong,
        weak_model=str(tiny_model_dir),
        args=_args(tmp_path),
        train_dataset=_dataset(),
        processing_class=tokenizer,
    )
    before_w = [p.detach().clone() for p in trainer.weak_model.parameters()]
    trainer.train()
    assert any(not torch.equal(a, b) for a, b in zip(before_s, strong.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(before_w, trainer.weak_model.parameters(), strict=True))
    logged = [r for r in trainer.state.log_history if "loss" in r]
    assert logged and logged[0]["grad_norm_weak"] > 0 and logged[0]["grad_norm_strong"] > 0


def test_trainer_loss_equals_reference(tmp_path, tiny_model_dir, tiny_model_dir_2, tokenizer):
    torch.manual_seed(0)
    strong = AutoModelForCausalLM.from_pretrained(tiny_model_dir_2)
    weak = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    trainer = WMSSTrainer(
        model=strong,
        weak_model=weak,
        args=_args(tmp_path, mix_lambda=0.3),
        train_dataset=_dataset(),
        processing_class=tokenizer,
    )
    batch = next(iter(trainer.get_train_dataloader()))
    loss = trainer.compute_loss(trainer.model, batch)
    assert "completion_mask" not in batch  # SFTTrainer already folded it into labels
    ref = mixed_logit_cross_entropy(
        strong(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
        weak(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
        batch["labels"],
        lam=0.3,
    )
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)


def test_config_rejects_bad_lambda(tmp_path):
    with pytest.raises(ConfigError, match="mix_lambda"):
        _args(tmp_path, mix_lambda=1.5)


def test_model_card_has_metadata_and_results():
    import yaml

    from wmss.phases.extract import PAPER_URL, model_card

    card = model_card("Qwen/Qwen3-4B-Base", {"lam": 0.5}, ["train.jsonl"], {"gsm8k": 0.71})
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["base_model"] == "Qwen/Qwen3-4B-Base" and meta["datasets"] == ["train.jsonl"]
    assert PAPER_URL in card and "| lam | 0.5 |" in card and "| gsm8k | 0.71 |" in card
    assert "## Evaluation" not in model_card(None)


def test_curriculum_from_given_entropies_trains_on_the_eq10_draw(tmp_path, tiny_model_dir, tokenizer):
    from wmss.method.curriculum import curriculum_weights, sample_active_set

    data = _dataset()
    rng = np.random.default_rng(0)
    h_weak, h_strong = rng.uniform(0.1, 2.0, len(data)), rng.uniform(0.1, 2.0, len(data))
    trainer = WMSSTrainer(
        model=str(tiny_model_dir),
        weak_model=str(tiny_model_dir),
        args=_args(tmp_path, curriculum=True, sample_multiplier=2.0, curriculum_beta=0.5),
        train_dataset=data,
        processing_class=tokenizer,
        entropies=(h_weak, h_strong),
    )
    draws = sample_active_set(curriculum_weights(h_weak, h_strong, beta=0.5), 2.0, seed=0)
    assert len(trainer.train_dataset) == 2 * len(data)
    assert trainer.train_dataset["input_ids"] == [trainer.full_train_dataset["input_ids"][i] for i in draws]
    assert trainer.curriculum_stats["n_draws"] == 2 * len(data)


def test_curriculum_entropies_equal_a_per_sample_float64_computation(
    tmp_path, tiny_model_dir, tiny_model_dir_2, tokenizer
):
    trainer = WMSSTrainer(
        model=str(tiny_model_dir_2),
        weak_model=str(tiny_model_dir),
        args=_args(tmp_path, curriculum=True, per_device_eval_batch_size=5),
        train_dataset=_dataset(),
        processing_class=tokenizer,
    )
    rows = trainer.full_train_dataset
    for branch, path in (("strong", tiny_model_dir_2), ("weak", tiny_model_dir)):
        model = AutoModelForCausalLM.from_pretrained(path).double().eval()
        got = trainer.sample_entropies(branch, rows)
        for value, ids, labels in zip(got, rows["input_ids"], rows["labels"], strict=True):
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0], -1)
            entropy = -(logp.exp() * logp).sum(-1)  # entropy at position t predicts token t + 1
            scored = torch.tensor(labels[1:]) != -100
            assert value == pytest.approx(float(entropy[:-1][scored].mean()), rel=1e-4)


def test_entropies_without_curriculum_or_of_wrong_length_are_refused(tmp_path, tiny_model_dir, tokenizer):
    kwargs = {"model": str(tiny_model_dir), "weak_model": str(tiny_model_dir), "processing_class": tokenizer}
    with pytest.raises(ConfigError, match="curriculum is False"):
        WMSSTrainer(args=_args(tmp_path), train_dataset=_dataset(), entropies=([1.0], [1.0]), **kwargs)
    with pytest.raises(ConfigError, match="one value per training sample"):
        WMSSTrainer(
            args=_args(tmp_path, curriculum=True),
            train_dataset=_dataset(),
            entropies=([1.0], [1.0]),
            **kwargs,
        )


def test_save_model_writes_the_strong_model_at_the_root_and_the_weak_one_in_weak(
    tmp_path, tiny_model_dir, tiny_model_dir_2, tokenizer, monkeypatch
):
    trainer = WMSSTrainer(
        model=str(tiny_model_dir_2),
        weak_model=str(tiny_model_dir),
        args=_args(tmp_path),
        train_dataset=_dataset(),
        processing_class=tokenizer,
    )
    trainer.train()
    monkeypatch.chdir(tmp_path)
    trainer.save_model("out")  # a relative path, as the CLI's run directories usually are
    for loaded, trained in (
        (AutoModelForCausalLM.from_pretrained(tmp_path / "out"), trainer.joint.strong),
        (AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "weak"), trainer.weak_model),
    ):
        for (name, a), b in zip(loaded.state_dict().items(), trained.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, msg=name)


def test_bf16_trainable_weights_are_refused_unless_opted_in(tmp_path, tiny_model_dir, tokenizer):
    kwargs = {"train_dataset": _dataset(), "processing_class": tokenizer}
    models = {
        "model": AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16),
        "weak_model": AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16),
    }
    with pytest.raises(ConfigError, match=r"torch\.bfloat16.*bf16=True"):
        WMSSTrainer(args=_args(tmp_path), **models, **kwargs)
    trainer = WMSSTrainer(args=_args(tmp_path, low_precision_training=True), **models, **kwargs)
    assert next(trainer.joint.strong.parameters()).dtype == torch.bfloat16


def test_a_damaged_checkpoint_is_named_with_the_way_out(tmp_path, tiny_model_dir, tokenizer):
    from wmss.errors import ModelError

    args = _args(tmp_path, save_strategy="steps", save_steps=1)
    kwargs = {"weak_model": str(tiny_model_dir), "train_dataset": _dataset(), "processing_class": tokenizer}
    WMSSTrainer(model=str(tiny_model_dir), args=args, **kwargs).train()
    checkpoint = tmp_path / "checkpoint-2"
    (checkpoint / "weak" / "model.safetensors").unlink()
    with pytest.raises(ModelError, match=r"cannot resume from .*checkpoint-2.*Delete that checkpoint"):
        WMSSTrainer(model=str(tiny_model_dir), args=args, **kwargs).train(
            resume_from_checkpoint=str(checkpoint)
        )


def test_curriculum_weighting_reads_eq10_as_the_pipeline_does(tmp_path, tiny_model_dir, tokenizer):
    from wmss.method.curriculum import build_curriculum, paper_eq10_weights

    data = _dataset()
    rng = np.random.default_rng(1)
    entropies = (rng.uniform(0.1, 2.0, len(data)), rng.uniform(0.1, 2.0, len(data)))
    kwargs = {"model": str(tiny_model_dir), "weak_model": str(tiny_model_dir), "processing_class": tokenizer}
    args = _args(tmp_path, curriculum=True, curriculum_weighting="paper_eq10")
    trainer = WMSSTrainer(args=args, train_dataset=data, entropies=entropies, **kwargs)
    # The trainer draws with the pipeline's builder, from its settings under their own names.
    expected = build_curriculum(*entropies, args.curriculum_settings)
    assert args.curriculum_settings.weighting == "paper_eq10"
    np.testing.assert_allclose(expected.weights, paper_eq10_weights(*entropies))
    drawn = trainer.full_train_dataset.select(expected.draws.tolist())
    assert trainer.train_dataset["input_ids"] == drawn["input_ids"]
    with pytest.warns(FutureWarning, match="'paper' is now called 'authors_code'"):
        assert _args(tmp_path, curriculum_weighting="paper").curriculum_weighting == "authors_code"
    with pytest.raises(ConfigError, match=r"'WMSSConfig\.curriculum_weighting' must be one of"):
        _args(tmp_path, curriculum_weighting="adaboost")


def test_settings_are_checked_under_the_trainers_own_names(tmp_path):
    for field, value in (("mix_lambda", 0.0), ("curriculum_beta", -1.0), ("sample_multiplier", 0.0)):
        with pytest.raises(ConfigError, match=f"'WMSSConfig.{field}' must be"):
            _args(tmp_path, **{field: value})
    assert WMSSConfig.arguments_for(_args(tmp_path, mix_lambda=0.3).joint_settings)["mix_lambda"] == 0.3
