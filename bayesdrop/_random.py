"""The one seeding scheme of bayesdrop: a private random stream per call, derived by hashing.

Every function that takes ``seed`` draws from a private ``torch.Generator`` (or a forked global
state restored afterwards); it never seeds the global generator for the caller. Where a call
needs several independent streams (one per batch of a pool, per round of an active-learning
loop, per dropout module of a mask bank, per rank of a distributed job) each is seeded with
:func:`derive_seed` ``(seed, *keys)``, a ``numpy.random.SeedSequence`` hash of the seed and the
stream's keys: streams never coincide across keys (``seed + b`` made seed 0's second batch seed
1's first). ``seed=None`` draws the call's base seed from PyTorch's global generator once, so
``torch.manual_seed`` makes an unseeded call reproducible and two unseeded calls differ.
"""

from __future__ import annotations

import numpy as np
import torch

from bayesdrop._validation import check_positive_int, fail

__all__ = ["base_seed", "derive_seed", "generator"]

#: Seeds are non-negative int64 values.
_MAX = 2**63 - 1


def base_seed(seed: int | None, name: str = "seed") -> int:
    """The call's seed: ``seed`` checked (a non-negative integer below 2**63), or, for None,
    one draw from PyTorch's global generator."""
    if seed is None:
        return int(torch.randint(0, 2**62, (), dtype=torch.int64))
    seed = check_positive_int(name, seed, allow_zero=True)
    if seed > _MAX:
        fail(name, "an integer in [0, 2**63 - 1]", seed)
    return seed


def derive_seed(seed: int, *keys: int) -> int:
    """An independent seed for the stream ``keys`` of a call seeded with ``seed``.

    Examples
    --------
    >>> from bayesdrop._random import derive_seed
    >>> derive_seed(0, 1) == derive_seed(0, 1), derive_seed(0, 1) == derive_seed(1, 0)
    (True, False)
    """
    state = np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))  # a non-negative int64


def generator(seed: int, *keys: int, device: torch.device | str | None = None) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with :func:`derive_seed` ``(seed, *keys)``
    (with ``seed`` itself when no key is given)."""
    gen = torch.Generator(device=device) if device is not None else torch.Generator()
    return gen.manual_seed(derive_seed(seed, *keys) if keys else seed)
