"""Datasets for spatiotemporal prediction, read from the formats the field already uses.

Every dataset yields float32 tensors (T, C, H, W) in model units (``value_range``) and maps them
back to the data's own units with ``to_units`` (``units`` names them). Build one by name::

    from mimcast.data import build_dataset
    ds = build_dataset("taxibj", "train", root="data/TaxiBJ")

Names: mmnist, mmnist-accel (generated Moving MNIST), mmnist-file (mnist_test_seq.npy or a
PredRNN .npz), kth, taxibj, custom (the user's .npy/.npz/HDF5/netCDF/Zarr).
"""

from .base import Affine, SequenceDataset
from .custom import CustomDataset
from .digits import load_digits
from .kth import KTH
from .mmnist import AcceleratedMovingMNIST, MovingMNIST, MovingMNISTFile
from .registry import build_dataset, dataset_options, list_datasets, register_dataset
from .spec import DataSpec
from .taxibj import TaxiBJ
from .video import VideoDataset

__all__ = [
    "KTH",
    "AcceleratedMovingMNIST",
    "Affine",
    "CustomDataset",
    "DataSpec",
    "MovingMNIST",
    "MovingMNISTFile",
    "SequenceDataset",
    "TaxiBJ",
    "VideoDataset",
    "build_dataset",
    "dataset_options",
    "list_datasets",
    "load_digits",
    "register_dataset",
]
