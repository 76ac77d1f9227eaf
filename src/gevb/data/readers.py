"""Byte-level readers for the IDX (MNIST, Fashion-MNIST) and CIFAR-10 binary formats (docs/method.md §8)
and for a user's own arrays in a NumPy ``.npz`` file.

Each reader checks the header against the size on disk before it reads the body, and grows its buffer only
as bytes actually arrive, so a forged header or a gzip bomb fails fast in small memory. Any problem raises
:class:`DataError` naming the file. Nothing is unpickled.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np

from gevb.data.errors import DataError

IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions (count, rows, cols)
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension (count)
IDX_UBYTE = 0x08
CIFAR_IMAGE_SHAPE = (3, 32, 32)  # channel-major: 1024 red, 1024 green, 1024 blue bytes
CIFAR_RECORD_BYTES = 1 + math.prod(CIFAR_IMAGE_SHAPE)  # label byte, then the image
CHUNK_BYTES = 1 << 20
MAX_DEFLATE_RATIO = 1032  # DEFLATE cannot expand its input by more than this factor
FIX = "delete it and re-download (--download), or check --data-dir"

T = TypeVar("T")


def corrupt(path: Path, problem: str) -> DataError:
    """The error for a file that is there but unusable."""
    return DataError(f"{path}: {problem}; {FIX}")


def read_idx_images(path: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """The images of an IDX3 file (plain or ``.gz``) as a (N, rows, cols) uint8 array.

    ``shape`` = (rows, cols), when given, is checked against the header before the body is read.
    """
    return _guarded(path, lambda: _read_idx(path, IDX_IMAGES_MAGIC, 3, shape))


def read_idx_labels(path: Path, num_classes: int) -> np.ndarray:
    """The labels of an IDX1 file (plain or ``.gz``) as a (N,) uint8 array, each in [0, num_classes)."""
    labels = _guarded(path, lambda: _read_idx(path, IDX_LABELS_MAGIC, 1, None))
    _check_labels(path, labels, num_classes)
    return labels


def read_cifar_batch(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR-10 binary batch as (N, 3, 32, 32) uint8 images and (N,) uint8 labels in [0, num_classes).

    The file is N records of 3073 bytes: one label byte, then the image channel by channel, row-major.
    """
    size = _guarded(path, lambda: os.path.getsize(path))
    if size == 0 or size % CIFAR_RECORD_BYTES:
        raise corrupt(path, f"size {size} bytes is not a positive multiple of the {CIFAR_RECORD_BYTES}-byte record")

    def read() -> bytearray:
        with open(path, "rb") as handle:
            return _read_exactly(handle, size, path, "the records")

    records = np.frombuffer(_guarded(path, read), dtype=np.uint8).reshape(-1, CIFAR_RECORD_BYTES)
    labels = records[:, 0]
    _check_labels(path, labels, num_classes)
    return records[:, 1:].reshape(-1, *CIFAR_IMAGE_SHAPE), labels


def _guarded(path: Path, read: Callable[[], T]) -> T:
    """Run ``read``, turning I/O, gzip and zlib failures into a :class:`DataError` naming ``path``."""
    try:
        return read()
    except (OSError, EOFError, zlib.error) as error:
        raise corrupt(path, f"cannot be read ({type(error).__name__}: {error})") from error


def _read_idx(path: Path, magic: int, ndim: int, shape: tuple[int, ...] | None) -> np.ndarray:
    """Header (magic, ``ndim`` big-endian uint32 sizes), then prod(sizes) unsigned bytes."""
    header_bytes = 4 + 4 * ndim
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as handle:
        (found,) = struct.unpack(">I", _read_exactly(handle, 4, path, "the magic number"))
        if found != magic:
            raise corrupt(path, _describe_magic(found, magic, ndim))
        dims = struct.unpack(f">{ndim}I", _read_exactly(handle, 4 * ndim, path, "the header"))
        if 0 in dims:
            raise corrupt(path, f"header sizes {dims} contain a zero")
        if shape is not None and dims[1:] != shape:
            raise corrupt(path, f"images are {'x'.join(map(str, dims[1:]))}, expected {'x'.join(map(str, shape))}")
        body_bytes = math.prod(dims)
        _check_size(path, header_bytes, body_bytes)
        body = _read_exactly(handle, body_bytes, path, "the data")
        if handle.read(1):
            raise corrupt(path, f"trailing bytes after the {body_bytes} data bytes its header {dims} declares")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _describe_magic(found: int, magic: int, ndim: int) -> str:
    if found >> 8 == IDX_UBYTE and found & 0xFF != ndim:
        return f"IDX file has {found & 0xFF} dimensions, expected {ndim} (magic {found}, expected {magic})"
    return f"bad magic number {found} (expected {magic}); not an IDX file of unsigned bytes"


def _check_size(path: Path, header_bytes: int, body_bytes: int) -> None:
    """Compare the byte count the header implies with the size on disk, before any body is read."""
    on_disk = os.path.getsize(path)
    if path.suffix == ".gz":
        if body_bytes > MAX_DEFLATE_RATIO * on_disk:
            raise corrupt(path, f"header declares {body_bytes} data bytes, more than a {on_disk}-byte gzip file holds")
    elif header_bytes + body_bytes != on_disk:
        state = "truncated" if on_disk < header_bytes + body_bytes else "trailing bytes"
        raise corrupt(path, f"{state}: header implies {header_bytes + body_bytes} bytes, the file has {on_disk}")


def _read_exactly(handle: BinaryIO, size: int, path: Path, what: str) -> bytearray:
    """Read ``size`` bytes in bounded chunks; the buffer only grows as bytes arrive."""
    buffer = bytearray()
    while len(buffer) < size:
        chunk = handle.read(min(CHUNK_BYTES, size - len(buffer)))
        if not chunk:
            raise corrupt(path, f"truncated: the file ends {len(buffer)} bytes into {what}, expected {size}")
        buffer += chunk
    return buffer


def _check_labels(path: Path, labels: np.ndarray, num_classes: int) -> None:
    if labels.size and int(labels.max()) >= num_classes:
        raise corrupt(path, f"label {int(labels.max())} is out of range 0..{num_classes - 1}")


NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
NPZ_OPTIONAL = ("num_classes",)  # K, when some classes have no example (else the training labels' largest + 1)
NPZ_FIX = "save it with numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The four arrays ``NPZ_ARRAYS`` of a NumPy ``.npz`` file (``numpy.savez``, compressed or not), and those of
    ``NPZ_OPTIONAL`` it holds.

    Each member's ``.npy`` header is parsed and checked before its data is read: numeric dtypes only
    (object arrays would need pickle, which is never run), and the declared array size must match
    the member's size in the archive, which itself may not exceed what DEFLATE can expand its
    compressed bytes to. Any problem raises :class:`DataError` naming the file.
    """

    def read() -> dict[str, np.ndarray]:
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise DataError(f"{path}: not an .npz file (not a zip archive); {NPZ_FIX}") from None
        with archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            missing = [name for name in NPZ_ARRAYS if name not in members]
            if missing:
                found = ", ".join(members) or "none"
                raise DataError(f"{path}: no array {', '.join(missing)} (it has {found}); {NPZ_FIX}")
            names = [*NPZ_ARRAYS, *(name for name in NPZ_OPTIONAL if name in members)]
            return {name: _read_npy_member(path, archive, members[name]) for name in names}

    return _guarded(path, read)


def _read_npy_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    if info.file_size > MAX_DEFLATE_RATIO * max(info.compress_size, 1) + 1024:
        raise DataError(f"{path}: member {info.filename} declares {info.file_size} bytes, more than its data can hold")
    with archive.open(info) as handle:
        try:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                raise ValueError(f".npy format version {version[0]}.{version[1]}")
        except (ValueError, SyntaxError) as error:
            raise DataError(f"{path}: member {info.filename} is not a .npy array ({error}); {NPZ_FIX}") from None
        if dtype.hasobject or dtype.kind not in "biuf":
            raise DataError(f"{path}: {info.filename} holds {dtype} values; store numbers (object arrays need pickle)")
        size = math.prod(shape) * dtype.itemsize
        if size > info.file_size:
            raise DataError(f"{path}: {info.filename} declares shape {shape}, more than its {info.file_size} bytes")
        body = _read_exactly(handle, size, path, info.filename)
    array = np.frombuffer(body, dtype=dtype)
    return array.reshape(shape[::-1]).transpose() if fortran else array.reshape(shape)
