"""Kuzushiji-MNIST (Clanuwat et al. 2018, "Deep learning for classical Japanese literature"): 60,000 + 10,000
28x28 images of ten cursive hiragana in MNIST's IDX format, from the ROIS-DS Center for Open Data in the
Humanities (files and md5s as published at github.com/rois-codh/kmnist)."""

from gevb.data.formats import IDX_FILES, IDX_NORMALIZATION, idx_splits
from gevb.data.registry import DatasetDefinition, Download, register_dataset

register_dataset(
    DatasetDefinition(
        "kmnist", "Kuzushiji-MNIST", (1, 28, 28), 10, idx_splits, IDX_NORMALIZATION, IDX_FILES, gz=True,
        hint="the IDX files", mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        downloads=(
            Download("train-images-idx3-ubyte.gz", "bdb82020997e1d708af4cf47b453dcf7"),
            Download("train-labels-idx1-ubyte.gz", "e144d726b3acfaa3e44228e80efcd344"),
            Download("t10k-images-idx3-ubyte.gz", "5c965bf0a639b31b8f53240b1b52f4d7"),
            Download("t10k-labels-idx1-ubyte.gz", "7320c461ea6c1c855c0b718fb2a4b134"),
        ),
    )
)  # fmt: skip
