"""MNIST (LeCun, Cortes & Burges): 60,000 + 10,000 28x28 handwritten digits in IDX files."""

from gevb.data.formats import IDX_FILES, IDX_NORMALIZATION, idx_splits
from gevb.data.registry import DatasetDefinition, Download, register_dataset

register_dataset(
    DatasetDefinition(
        "mnist", "MNIST", (1, 28, 28), 10, idx_splits, IDX_NORMALIZATION, IDX_FILES, gz=True, hint="the IDX files",
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        downloads=(
            Download("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            Download("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            Download("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            Download("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
    )
)  # fmt: skip
