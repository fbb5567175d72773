"""`LLMSRTTrainer`: transformers' Trainer with checkpoints that a kill can never leave half-written."""

import os
import shutil

from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, sort_checkpoints

from ..data.streaming import TrainingStream
from ..diagnostics.audio_gain import first_answer_logit
from .sharding import (
    check_sharding,
    enable_fsdp_on_cpu,
    keep_present_layer_classes,
    meta_twin,
    shards_weights,
    unshard,
)

STAGING_DIR = ".staging"


class LLMSRTTrainer(Trainer):
    """A `Trainer` (checkpointing, logging, distributed support unchanged) whose checkpoints appear atomically.

    Each checkpoint is written in full (weights, optimizer, scheduler, RNG states of every process, trainer state)
    under `OUTPUT/.staging/checkpoint-N` and only then renamed to `OUTPUT/checkpoint-N`. A process killed at any
    moment leaves either a complete checkpoint or none: `resume_from_checkpoint` never sees a partial one.
    Old checkpoints (beyond `save_total_limit`) are renamed out of sight before they are deleted, for the same
    reason.

    Sharded runs (FSDP2, DeepSpeed; `llmsrt.training.sharding`) shard on CPU processes too, fail when the sharding
    they asked for did not happen, and give the trained model back whole (`trained_model`).
    """

    _writing_checkpoint = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # FSDP2 and ZeRO-3 shard the model in place: keep its unsharded structure (no weights) for the trained ones.
        self._unsharded_twin = meta_twin(self.model) if shards_weights(self) else None

    def create_accelerator_and_postprocess(self) -> None:
        accelerator_args = self._build_accelerator_args()
        enable_fsdp_on_cpu(self.args, accelerator_args["mixed_precision"], accelerator_args.get("dynamo_plugin"))
        super().create_accelerator_and_postprocess()

    def _prepare_for_training(self, *args, **kwargs):
        if self.is_fsdp_enabled:
            keep_present_layer_classes(self.accelerator.state.fsdp_plugin, self.model)
        prepared = super()._prepare_for_training(*args, **kwargs)
        check_sharding(self.args, self.model_wrapped, self.accelerator)
        return prepared

    def trained_model(self):
        """The trained model, whole on every process (gathered from the shards after FSDP or ZeRO-3; every process
        calls it)."""
        if self._unsharded_twin is None:
            return self.model
        return unshard(self.model, self._unsharded_twin)

    def _get_output_dir(self, trial) -> str:
        run_dir = super()._get_output_dir(trial)
        return os.path.join(run_dir, STAGING_DIR) if self._writing_checkpoint else run_dir

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = self._get_output_dir(trial)
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        self._writing_checkpoint = True
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._writing_checkpoint = False
        self.accelerator.wait_for_everyone()  # every process has written its RNG state
        if self.args.should_save:
            publish_directory(os.path.join(run_dir, STAGING_DIR, name), os.path.join(run_dir, name))
            retire_old_checkpoints(run_dir, self.args.save_total_limit, self.state.best_model_checkpoint)
        self.accelerator.wait_for_everyone()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The loss needs the LLM's output layer on answer positions only: skip the rest (audio and prompt).

        The vocabulary projection (`(L, D) x (D, vocab)`, 151,936 entries for Qwen2.5) is a large share of a
        training step; it is computed from the position before the batch's first answer token on, with the labels
        cut to match, which gives the same loss.
        """
        labels = inputs.get("labels")
        if labels is not None and "logits_to_keep" not in inputs:
            first = first_answer_logit(labels)
            if first is not None:
                inputs = {**inputs, "labels": labels[:, first:], "logits_to_keep": labels.shape[1] - first}
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def get_resumed_dataloader(self, dataloader, num_batches: int):
        """A resumed stream starts reading at the first example the checkpoint had not trained on (the stock
        Trainer would collate `num_batches` batches again and drop them, from the start of the first pass)."""
        if isinstance(self.train_dataset, TrainingStream):
            self.train_dataset.start = num_batches * self.train_dataset.batch_size
            return dataloader
        return super().get_resumed_dataloader(dataloader, num_batches)

    def train(self, *args, **kwargs):
        if self.args.should_save:  # drop whatever a killed run left half-written
            shutil.rmtree(os.path.join(self.args.output_dir, STAGING_DIR), ignore_errors=True)
        return super().train(*args, **kwargs)


def publish_directory(staged: str, final: str) -> None:
    """Move a fully written directory to its final name in one atomic rename (replacing an older copy)."""
    for root, _, files in os.walk(staged):
        for file_name in files:
            with open(os.path.join(root, file_name), "rb") as handle:
                os.fsync(handle.fileno())
    if os.path.exists(final):
        retired = final + ".retired"
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(final, retired)
        os.replace(staged, final)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staged, final)


def retire_old_checkpoints(run_dir: str, save_total_limit: int | None, best_model_checkpoint: str | None) -> None:
    """Keep the newest `save_total_limit` checkpoints (and the best one); each older one is first renamed into the
    staging folder, so that a kill during the deletion never leaves a partial `checkpoint-N` behind."""
    if not save_total_limit or save_total_limit <= 0:
        return
    checkpoints = sort_checkpoints(run_dir, PREFIX_CHECKPOINT_DIR, use_mtime=False)
    protected = {checkpoints[-1]} if checkpoints else set()
    if best_model_checkpoint is not None:
        protected.add(str(best_model_checkpoint))
    excess = len(checkpoints) - max(save_total_limit, len(protected))
    doomed = [checkpoint for checkpoint in checkpoints if checkpoint not in protected][: max(excess, 0)]
    for checkpoint in doomed:
        retired = os.path.join(run_dir, STAGING_DIR, "retired-" + os.path.basename(checkpoint))
        os.makedirs(os.path.dirname(retired), exist_ok=True)
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(checkpoint, retired)
        shutil.rmtree(retired, ignore_errors=True)
