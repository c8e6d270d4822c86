# SPDX-License-Identifier: Apache-2.0
"""The study of BadNets on MNIST (§4).

``spec``: what runs (the spec, its jobs and phases); ``analysis``: loads models and data, computes
``results.json``; ``results``: what ``results.json`` holds, typed; ``report``: renders from those
results alone; ``run``: the three in order.
"""

from __future__ import annotations

from badnets.studies.mnist.results import MnistResults
from badnets.studies.mnist.run import run_mnist_study
from badnets.studies.mnist.spec import ALL_PAIRS, PAPER, QUICK_PAIRS, MnistStudySpec, build_jobs

__all__ = ["ALL_PAIRS", "PAPER", "QUICK_PAIRS", "MnistResults", "MnistStudySpec", "build_jobs", "run_mnist_study"]
