"""Datasets in their standard formats, held in memory as tensors, with device-side augmentation.

See docs/data.md for the layout on disk, the splits and the download behaviour.
"""
from .augment import augment_batch, center_crop, eval_input, normalize, train_input, random_crop_boxes, random_resized_crop, resized_crop
from .folders import load_folder
from .images import DataError, ImageData, epoch_batches, num_batches
from .load import DATASETS, SPLITS, load_dataset

__all__ = ["DATASETS", "SPLITS", "DataError", "ImageData", "augment_batch", "center_crop", "eval_input", "train_input", "epoch_batches",
           "load_dataset", "load_folder", "normalize", "num_batches", "random_crop_boxes", "random_resized_crop",
           "resized_crop"]
