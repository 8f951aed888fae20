"""Which samples each process trains on at each step: a seeded stream of epochs, sharded by rank so
that P processes with batch B see exactly the samples of one process with batch P x B.

The data stream is the concatenation of epochs, each a permutation of the items drawn from
``(seed, epoch)``. Step s takes the next ``global batch = B x P x A`` positions (A: micro-batches
per step); micro-batch k of rank r is the B positions starting at ``s G + k B P + r B``. A sample's
augmentation and prompts depend only on ``(seed, epoch, item)``, never on the rank, the batch or the
worker that loads it; so a resumed run, or another number of processes, sees the same samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .data import DataError

__all__ = ["DataOrder", "LoadedItem", "ShardedSteps", "make_loader", "prompt_generator"]


class DataOrder:
    """Position in the stream -> ``(epoch, item index)``."""

    def __init__(self, num_items: int, seed: int) -> None:
        if num_items < 1:
            raise ValueError("no items to train on")
        self.num_items = num_items
        self.seed = seed
        self._perms: dict[int, list[int]] = {}

    def permutation(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms = {epoch: torch.randperm(self.num_items, generator=generator).tolist()}
        return self._perms[epoch]

    def item(self, position: int) -> tuple[int, int]:
        epoch, offset = divmod(position, self.num_items)
        return epoch, self.permutation(epoch)[offset]


def prompt_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The prompt-simulation stream of one item in one epoch (independent of its augmentation's)."""
    state = np.random.SeedSequence([seed, epoch, index, 0x5A2]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


@dataclass
class LoadedItem:
    """A sample with where it came from; ``error`` set (and ``sample`` None) when loading failed."""

    position: int
    epoch: int
    index: int
    sample: Any = None
    error: str | None = None


class _Items(torch.utils.data.Dataset):
    """Positions in the stream -> :class:`LoadedItem` (a data error is returned, not raised, so a
    worker process hands back its one-line message instead of a traceback)."""

    def __init__(self, dataset: Any, order: DataOrder) -> None:
        self.dataset = dataset
        self.order = order

    def __len__(self) -> int:
        return self.order.num_items

    def __getitem__(self, position: int) -> LoadedItem:
        epoch, index = self.order.item(position)
        self.dataset.set_epoch(epoch)
        try:
            return LoadedItem(position, epoch, index, sample=self.dataset[index])
        except DataError as error:
            return LoadedItem(position, epoch, index, error=str(error))


class ShardedSteps(torch.utils.data.Sampler):
    """Micro-batches of positions of one rank, step after step from ``start_step`` to ``steps``."""

    def __init__(self, *, batch_size: int, accumulate: int, rank: int, world_size: int, start_step: int,
                 steps: int) -> None:
        self.batch_size, self.accumulate = batch_size, accumulate
        self.rank, self.world_size = rank, world_size
        self.start_step, self.steps = start_step, steps

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size * self.accumulate

    def positions(self, step: int, micro: int) -> list[int]:
        start = step * self.global_batch + (micro * self.world_size + self.rank) * self.batch_size
        return list(range(start, start + self.batch_size))

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.steps):
            for micro in range(self.accumulate):
                yield self.positions(step, micro)

    def __len__(self) -> int:
        return (self.steps - self.start_step) * self.accumulate


def _as_list(items: list[LoadedItem]) -> list[LoadedItem]:
    return items


def make_loader(dataset: Any, order: DataOrder, steps: ShardedSteps, workers: int) -> torch.utils.data.DataLoader:
    """A loader of this rank's micro-batches (lists of :class:`LoadedItem`). Its own generator keeps
    it off torch's global random stream (which drop path uses), so resuming replays the same draws."""
    return torch.utils.data.DataLoader(
        _Items(dataset, order),
        batch_sampler=steps,
        num_workers=workers,
        collate_fn=_as_list,
        generator=torch.Generator().manual_seed(order.seed),
        persistent_workers=False,
    )
