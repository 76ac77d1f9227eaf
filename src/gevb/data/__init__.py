"""Data sets as whole tensors (docs/method.md §8): scikit-learn's digits, MNIST, Fashion-MNIST, CIFAR-10 (binary),
Kuzushiji-MNIST, and any registered by a plugin (``gevb.data.registry``).

``load_dataset(name)`` reads local files (or scikit-learn's bundled digits); ``download=True`` fetches
missing files from the published mirrors, checked against their md5. Every problem is a one-line
:class:`DataError` naming the file and the fix.
"""

from gevb.data.datasets import Dataset, Split, dataset_from_arrays, load_dataset, with_validation
from gevb.data.download import download_dataset
from gevb.data.errors import DataError
from gevb.data.registry import DATASETS, DatasetDefinition, Download, register_dataset
from gevb.data.sources import default_data_dir

__all__ = [
    "DATASETS", "DataError", "Dataset", "DatasetDefinition", "Download", "Split", "dataset_from_arrays",
    "default_data_dir", "download_dataset", "load_dataset", "register_dataset", "with_validation",
]  # fmt: skip
