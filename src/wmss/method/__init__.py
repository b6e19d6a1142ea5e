"""The method of the paper, one module per equation or part; no files, no run directories, no command line.

`entropy` (Eq. 3/8: per-sample completion entropy, and `dataset_entropies`, the one scorer of a data set),
`curriculum` (Eq. 9-10: weights, the drawn active set, and `build_curriculum`, the one builder), `mixed_loss`
(Eq. 11-12: cross-entropy on mixed logits), `joint_model` (weak + strong as one module trained on that loss),
`trainer` (`WMSSTrainer`/`WMSSConfig`, the one joint-training path), `lora` (the one-GPU mode: two adapters on
one base) and `settings` (`CurriculumSettings`, `JointSettings`: what a curriculum and a joint stage compute).
"""
