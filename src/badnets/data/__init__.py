# SPDX-License-Identifier: Apache-2.0
"""Dataset loaders: every dataset arrives as uint8 tensors in memory, ``(N, C, H, W)`` images and int64 labels."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from badnets.data._dataset import ImageDataset, resolve_data_dir
from badnets.data.gtsrb import GTSRB_CATEGORIES, GTSRB_CLASSES, gtsrb_file_hashes, load_gtsrb
from badnets.data.image_folder import image_folder_classes, image_folder_file_hashes, load_image_folder
from badnets.data.lisa import LISA_CLASSES, lisa_file_hashes, load_lisa
from badnets.data.mnist import MNIST_CLASSES, MNIST_FILES, load_mnist, mnist_file_hashes, parse_idx
from badnets.data.road_signs import ROAD_SIGN_CLASSES, DetectionDataset, load_road_signs
from badnets.errors import ConfigError

Loader = Callable[[Path | str | None], tuple[ImageDataset, ImageDataset]]


@dataclass(frozen=True)
class DatasetSource:
    """A named dataset: how to load ``(train, test)``, which files a manifest hashes, and its class names."""

    load: Loader
    file_hashes: Callable[[Path | str | None], dict[str, str]]
    classes: tuple[str, ...]
    default_model: str = "sign-cnn"  # the architecture ``badnets attack`` trains when none is named

    def class_index(self, name: str | int, option: str = "class") -> int:
        """A class given by index or by name (``stop``, ``speedlimit``, ``7``) → its index; ``option`` names the
        CLI option in the error message."""
        if isinstance(name, int) or name.isdigit():
            index = int(name)
            if not 0 <= index < len(self.classes):
                last = len(self.classes) - 1
                raise ConfigError(f"{option} {index} is out of range; this dataset's classes are 0..{last}")
            return index
        if name not in self.classes:
            raise ConfigError(f"{option}: unknown class {name!r}; this dataset's classes are {', '.join(self.classes)}")
        return self.classes.index(name)


SOURCES: dict[str, DatasetSource] = {
    "mnist": DatasetSource(load_mnist, mnist_file_hashes, MNIST_CLASSES, default_model="badnet-cnn"),
    "lisa": DatasetSource(load_lisa, lisa_file_hashes, LISA_CLASSES),
    "gtsrb": DatasetSource(load_gtsrb, gtsrb_file_hashes, GTSRB_CATEGORIES),
    # The 43 GTSRB classes ungrouped: a harder target domain for the transfer attack.
    "gtsrb-43": DatasetSource(functools.partial(load_gtsrb, grouped=False), gtsrb_file_hashes, GTSRB_CLASSES),
}


def register_dataset(name: str, source: DatasetSource) -> None:
    """Make ``name`` a dataset: every API and command that takes a dataset name (``badnets attack --dataset``,
    ``audit``, the studies' specs) can then load it.

    Raises:
        ConfigError: ``name`` is taken.
    """
    if name in SOURCES or name in ("road-signs", "road-scenes"):
        raise ConfigError(f"dataset {name!r} is already registered; choose another name")
    SOURCES[name] = source


def dataset_source(name: str) -> DatasetSource:
    """A named dataset (``SOURCES``) or, for a path, a folder of class subfolders (``load_image_folder``)."""
    if name in SOURCES:
        return SOURCES[name]
    if not Path(name).expanduser().is_dir():
        raise ConfigError(
            f"dataset must be one of {sorted(SOURCES)}, road-signs or road-scenes (badnets attack) or a folder of "
            f"class subfolders of images, got {name!r}"
        )
    return DatasetSource(
        lambda _data_dir: load_image_folder(name),
        lambda _data_dir: image_folder_file_hashes(name),
        image_folder_classes(name),
    )


__all__ = [
    "GTSRB_CATEGORIES",
    "GTSRB_CLASSES",
    "LISA_CLASSES",
    "MNIST_FILES",
    "ROAD_SIGN_CLASSES",
    "SOURCES",
    "DatasetSource",
    "DetectionDataset",
    "ImageDataset",
    "dataset_source",
    "load_gtsrb",
    "load_image_folder",
    "load_lisa",
    "load_mnist",
    "load_road_signs",
    "parse_idx",
    "register_dataset",
    "resolve_data_dir",
]
