# SPDX-License-Identifier: Apache-2.0
"""badnets: the BadNets paper (Gu, Dolan-Gavitt, Garg, 2017, arXiv:1708.06733) as a tested toolkit."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
