"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 60,000 + 10,000 28x28 clothing images in MNIST's IDX format;
Debian's ``dataset-fashion-mnist`` package installs them in /usr/share/datasets/fashion-mnist."""

from pathlib import Path

from gevb.data.formats import IDX_FILES, IDX_NORMALIZATION, idx_splits
from gevb.data.registry import DatasetDefinition, Download, register_dataset

register_dataset(
    DatasetDefinition(
        "fashion-mnist", "Fashion-MNIST", (1, 28, 28), 10, idx_splits, IDX_NORMALIZATION, IDX_FILES, gz=True,
        hint="the IDX files", system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        downloads=(
            Download("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            Download("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            Download("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            Download("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        ),
    )
)  # fmt: skip
