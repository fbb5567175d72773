"""A streamed corpus as training reads it: shuffled through a buffer, pass after pass, from a position it can resume.

`datasets` streams a corpus (`IterableDataset`) without writing it to disk; the Trainer then needs `max_steps`
(a stream has no length) and, on resume, skips the batches it already trained on. Left to itself it would do so by
collating them again (decoding every skipped clip) from the start of pass 0, since with no length it counts every
step in one epoch: a stream that had wrapped into a second pass would restart that pass from its beginning.

`TrainingStream` makes the order a function of the example's position alone: passes follow each other without a
break (pass `e` is the corpus shuffled with `seed` and `set_epoch(e)`: a `buffer_size` shuffling buffer over shuffled
shards), and batches run on across a pass's end. Resuming at step `s` then starts reading at example
`s x gradient_accumulation_steps x per_device_batch x processes` (`start`), so the resumed run sees the same batches as
an uninterrupted one; the rows before it are read again (their clips' headers checked), never decoded.

DataLoader worker processes share the stream out a global batch at a time (worker `k` takes batches `k, k + W, ...`,
the order in which the DataLoader hands them on), so the order is the same with any `dataloader_num_workers`.
"""

import itertools

import datasets
import torch

READ_BATCH = 64  # rows read from the stream at a time


class TrainingStream(torch.utils.data.IterableDataset):
    """Endless, reshuffled passes over `examples`, from example `start` on.

    Args:
        examples: the stage's streamed examples (a `datasets.IterableDataset`, checked clip by clip).
        seed: the shuffling seed (pass `e` shuffles with `seed` and epoch `e`).
        buffer_size: the shuffling buffer (examples); 0 keeps the corpus order.
        batch_size: examples per global batch (per-device batch x processes): the unit workers share out.
    """

    def __init__(self, examples: datasets.IterableDataset, seed: int = 0, buffer_size: int = 1000,
                 batch_size: int = 1):
        if buffer_size < 0 or batch_size < 1:
            raise ValueError(f"A training stream needs buffer_size >= 0 and batch_size >= 1; got {buffer_size} and "
                             f"{batch_size}.")
        self.examples, self.seed, self.buffer_size, self.batch_size = examples, seed, buffer_size, batch_size
        self.start = 0

    def one_pass(self, epoch: int):
        """The examples of pass `epoch`, in its shuffled order (`IterableDataset.iter` reads the whole stream even
        in a DataLoader worker: the workers share it out here, by batches)."""
        examples = self.examples
        if self.buffer_size:
            examples = examples.shuffle(seed=self.seed, buffer_size=self.buffer_size)
            examples.set_epoch(epoch)
        for rows in examples.iter(batch_size=READ_BATCH):
            names = list(rows)
            for values in zip(*(rows[name] for name in names)):
                yield dict(zip(names, values))

    def passes(self):
        for epoch in itertools.count():
            empty = True
            for example in self.one_pass(epoch):
                empty = False
                yield example
            if empty:
                raise ValueError("The training stream has no usable example (every row was left out, or the corpus "
                                 "is empty): check the dataset's path, split and languages.")

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        workers, index = (worker.num_workers, worker.id) if worker is not None else (1, 0)
        for position, example in enumerate(itertools.islice(self.passes(), self.start, None)):
            if (position // self.batch_size) % workers == index:
                yield example
