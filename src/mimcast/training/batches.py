"""Which sequences each training step sees: a pure function of (seed, step).

Epochs are seeded permutations of the training set; step s takes positions s*B .. (s+1)*B - 1
of their concatenation. So a resumed run sees exactly the batches of an uninterrupted one, and
N processes see the global batches of one process (each rank takes its slice).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

from mimcast.errors import ConfigError


def check_batch_split(batch_size: int, world: int) -> None:
    """A ConfigError unless the global batch splits evenly over the processes."""
    if batch_size % world:
        raise ConfigError(
            f"train.batch_size {batch_size} is not divisible by the {world} processes"
        )


class StepSampler(Sampler[list[int]]):
    """Yields this rank's slice of the global batch for steps start..stop-1."""

    def __init__(
        self, n: int, *, batch_size: int, seed: int, steps: range, rank: int = 0, world: int = 1
    ) -> None:
        check_batch_split(batch_size, world)
        self.n, self.batch_size, self.seed, self.steps = n, batch_size, seed, steps
        self.rank, self.world = rank, world
        self._perms: dict[int, np.ndarray] = {}  # epoch -> permutation (the last few only)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.clear()
            self._perms[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return self._perms[epoch]

    def global_batch(self, step: int) -> list[int]:
        """Dataset indices of the whole batch of `step`."""
        out = []
        for pos in range(step * self.batch_size, (step + 1) * self.batch_size):
            epoch, k = divmod(pos, self.n)
            out.append(int(self._permutation(epoch)[k]))
        return out

    def __iter__(self) -> Iterator[list[int]]:
        per = self.batch_size // self.world
        for step in self.steps:
            yield self.global_batch(step)[self.rank * per : (self.rank + 1) * per]

    def __len__(self) -> int:
        return len(self.steps)
