"""Datasets in their standard formats, held in memory as tensors, with device-side augmentation.

See docs/data.md for the layout on disk, the splits and the download behaviour.
"""
from .augment import augment_batch, normalize
from .images import DataError, ImageData, epoch_batches, num_batches
from .load import DATASETS, SPLITS, load_dataset

__all__ = ["DATASETS", "SPLITS", "DataError", "ImageData", "augment_batch", "epoch_batches", "load_dataset",
           "normalize", "num_batches"]
