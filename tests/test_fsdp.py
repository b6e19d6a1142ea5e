"""Sharded joint training: FSDP2 (`fully_shard`, 2 processes, gloo on CPU) matches one process; DeepSpeed ZeRO-3.

The FSDP2 run shards every decoder layer of both branches and the JointModel root, trains with the global
token count as denominator (as Trainer does with `num_items_in_batch`), saves a sharded checkpoint (torch.
distributed.checkpoint) mid-run, resumes from it in fresh processes, and extracts both branches as ordinary
Hugging Face checkpoints from it. Not covered here: accelerate/Trainer's own FSDP plugin.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.multiprocessing as mp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)
from torch.distributed.fsdp import fully_shard
from transformers import AutoModelForCausalLM

from tests.conftest import tiny_llama_config, tiny_qwen3_config
from wmss.method import joint_model
from wmss.method.joint_model import JointModel

VOCAB, WORLD, STEPS, SAVE_AT = 64, 2, 3, 2
pytestmark = pytest.mark.slow


def _joint(weak_trainable: bool) -> JointModel:
    torch.manual_seed(0)
    strong = AutoModelForCausalLM.from_config(tiny_qwen3_config(VOCAB))  # tied head
    weak = AutoModelForCausalLM.from_config(tiny_llama_config(VOCAB))  # untied head
    return JointModel(strong, weak, lam=0.4, weak_trainable=weak_trainable, chunk_size=5)


def _batches() -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(STEPS):
        input_ids = torch.randint(0, VOCAB, (2 * WORLD, 10), generator=gen)
        labels = input_ids.clone()
        labels[:, : int(torch.randint(2, 6, (1,), generator=gen))] = -100
        labels[0, 7:] = -100  # ranks get different trained-token counts
        batches.append(
            {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}
        )
    return batches


def _step(model: JointModel, optimizer: torch.optim.Optimizer, batch: dict, rank: int, world: int) -> float:
    n_global = int(batch["labels"][:, 1:].ne(-100).sum())
    rows = slice(rank * 2 * WORLD // world, (rank + 1) * 2 * WORLD // world)
    local = {k: v[rows] for k, v in batch.items()}
    # Gradients are averaged over ranks, so each rank's sum / global count is scaled by the world size.
    loss = model(**local, num_items_in_batch=n_global)["loss"] * world
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    value = loss.detach() / world
    if world > 1:
        dist.all_reduce(value)
    return float(value)


def _optimizer(model: JointModel) -> torch.optim.Optimizer:
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)


def _shard(model: JointModel) -> JointModel:
    for branch in model.branches():
        for layer in branch.model.layers:
            fully_shard(layer)
    return fully_shard(model)


def _worker(rank: int, init_file: str, out: str, weak_trainable: bool) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    fused_calls = []
    fused = joint_model.fused_mixed_cross_entropy
    # Counts the loss calls that took the fused path: the root unshards the heads for its whole forward.
    joint_model.fused_mixed_cross_entropy = lambda *args, **kwargs: (
        fused_calls.append(1),
        fused(*args, **kwargs),
    )[1]
    try:
        batches, checkpoint = _batches(), Path(out) / "sharded"
        model = _shard(_joint(weak_trainable))
        optimizer = _optimizer(model)
        losses = []
        for step, batch in enumerate(batches):
            if step == SAVE_AT:
                model_state, optim_state = get_state_dict(model, optimizer)
                dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=checkpoint)
            losses.append(_step(model, optimizer, batch, rank, WORLD))
        # Resume in a fresh model and optimizer from the sharded checkpoint, then redo the remaining steps.
        resumed = _shard(_joint(weak_trainable))
        resumed_optimizer = _optimizer(resumed)
        model_state, optim_state = get_state_dict(resumed, resumed_optimizer)
        state = {"model": model_state, "optim": optim_state}
        dcp.load(state, checkpoint_id=checkpoint)
        set_state_dict(
            resumed, resumed_optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"]
        )
        resumed_losses = [_step(resumed, resumed_optimizer, b, rank, WORLD) for b in batches[SAVE_AT:]]
        # Extraction: the full (unsharded) weights of the sharded checkpoint, split into the two branches.
        full = get_model_state_dict(resumed, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if rank == 0:
            record = {"losses": losses, "resumed": resumed_losses, "fused_calls": len(fused_calls)}
            torch.save(record, Path(out) / "losses.pt")
            extract = _joint(weak_trainable)
            extract.load_state_dict(full)
            extract.strong.save_pretrained(Path(out) / "strong")
            extract.weak.save_pretrained(Path(out) / "weak")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("weak_trainable", [True, False], ids=["co-trained", "frozen"])
def test_fsdp2_two_processes_match_one_and_resume_from_the_sharded_checkpoint(tmp_path, weak_trainable):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path), weak_trainable), nprocs=WORLD, join=True)
    sharded = torch.load(tmp_path / "losses.pt")

    reference = _joint(weak_trainable)
    optimizer = _optimizer(reference)
    losses = [_step(reference, optimizer, batch, 0, 1) for batch in _batches()]
    torch.testing.assert_close(sharded["losses"], losses, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sharded["resumed"], losses[SAVE_AT:], rtol=1e-5, atol=1e-6)
    assert sharded["fused_calls"] == STEPS + STEPS - SAVE_AT

    # Both extracted branches load as plain checkpoints and equal the one-process model after all steps.
    for name, branch in (("strong", reference.strong), ("weak", reference.weak)):
        loaded = AutoModelForCausalLM.from_pretrained(tmp_path / name)
        for key, value in branch.state_dict().items():
            torch.testing.assert_close(loaded.state_dict()[key], value, rtol=1e-4, atol=1e-5, msg=key)
    if not weak_trainable:
        untouched = _joint(False).weak.state_dict()
        loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "weak").state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in untouched.items())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="DeepSpeed ZeRO-3 needs a CUDA GPU")
def test_deepspeed_zero3_joint_step_matches_unsharded(tmp_path, monkeypatch):
    deepspeed = pytest.importorskip("deepspeed")
    for key, value in {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29533",
        "RANK": "0",
        "WORLD_SIZE": "1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LOCAL_RANK", "0")
    batch = {k: v.cuda() for k, v in _batches()[0].items()}
    reference = _joint(True).cuda()
    want = reference(**batch)["loss"]
    want.backward()
    ds_config = {
        "train_micro_batch_size_per_gpu": 1,
        "zero_optimization": {"stage": 3, "stage3_gather_16bit_weights_on_model_save": True},
        "optimizer": {"type": "AdamW", "params": {"lr": 1e-2}},
    }
    engine, *_ = deepspeed.initialize(model=_joint(True), config=ds_config)
    head = engine.module.strong.get_output_embeddings()
    assert hasattr(head.weight, "ds_id")  # partitioned: the loss calls the heads as modules (recompute path)
    loss = engine(**batch)["loss"]
    torch.testing.assert_close(loss.float(), want.float(), rtol=1e-5, atol=1e-6)
    engine.backward(loss)
    engine.step()
    engine.save_16bit_model(str(tmp_path), "joint.bin")
    saved = torch.load(tmp_path / "joint.bin")
    assert any(k.startswith("strong.") for k in saved) and any(k.startswith("weak.") for k in saved)
