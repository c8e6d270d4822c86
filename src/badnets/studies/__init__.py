# SPDX-License-Identifier: Apache-2.0
"""The paper's studies, one folder each: ``spec`` (what runs), ``analysis`` (the numbers), ``report`` (rendered
from ``results.json`` alone), ``run`` (the three in order; what ``badnets reproduce`` calls)."""
