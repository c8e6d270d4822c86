# SPDX-License-Identifier: Apache-2.0
"""One PyTorch intra-op thread for a block: repeatable CPU numbers, and no thread contention on shared cores."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["one_cpu_thread"]


@contextmanager
def one_cpu_thread() -> Iterator[None]:
    """Run the block on one PyTorch intra-op thread, then give the caller its thread count back.

    Float work on the CPU is repeatable bit for bit only at a fixed thread count (PyTorch splits reductions by
    thread); one thread is what a study's worker processes use anyway, and on busy cores small tensor operations
    run several times faster on one thread than spinning on many. CUDA work is unaffected.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
