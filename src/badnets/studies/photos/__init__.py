# SPDX-License-Identifier: Apache-2.0
"""The study of real photos (cats/dogs, road photos).

``spec``: what runs (the spec, its jobs and phases); ``analysis``: loads models and data, computes
``results.json``; ``results``: what ``results.json`` holds, typed; ``report``: renders from those
results alone; ``run``: the three in order.
"""

from __future__ import annotations

from badnets.studies.photos.results import PhotoResults
from badnets.studies.photos.run import run_photo_study
from badnets.studies.photos.spec import PhotoStudySpec, build_jobs, photo_folder

__all__ = ["PhotoResults", "PhotoStudySpec", "build_jobs", "photo_folder", "run_photo_study"]
