"""MNISTDigitPairs (uninet_mm/datasets/digit_pairs.py) against hand-built canvases: labels of
the two digits, positions inside their halves, no digit image in both splits, determinism."""
import numpy as np
import pytest

from uninet_mm.datasets.digit_pairs import MNISTDigitPairs, compose, pair_label
from uninet_mm.datasets.digits import _mnist_raw


def test_pair_label_and_compose_by_hand():
    assert [pair_label(3, 7, k) for k in ('max', 'sum_mod10', 'left')] == [7, 0, 3]
    assert [pair_label(9, 2, k) for k in ('max', 'sum_mod10', 'left')] == [9, 1, 9]
    with pytest.raises(ValueError, match='label must be one of'):
        pair_label(1, 2, 'min')
    a, b = np.full((2, 2), 5, np.uint8), np.full((2, 3), 9, np.uint8)
    c = compose(a, b, 6, (1, 0), (3, 3))
    expect = np.zeros((6, 6), np.uint8)
    expect[1:3, 0:2] = 5
    expect[3:5, 3:6] = 9
    np.testing.assert_array_equal(c, expect)


@pytest.mark.parametrize('label', ['left', 'max'])
def test_canvases_match_their_digits_positions_and_labels(label):
    import cv2
    images, labels = _mnist_raw()
    ds = MNISTDigitPairs(split='val', label=label, channels=1)
    assert len(ds) == 1000
    left, right, pl, pr = ds.pairs()
    for k in (0, 1, 499, 999):
        d = ds[k]
        a, b = d['source_idx']
        assert (a, b) == (left[k], right[k])
        by_hand = labels[a] if label == 'left' else max(labels[a], labels[b])
        assert d['gt_label'] == by_hand
        (ya, xa), (yb, xb) = pl[k], pr[k]
        assert 0 <= xa <= 16 - 14 and 16 <= xb <= 32 - 14 and 0 <= ya <= 18 and 0 <= yb <= 18
        # the canvas holds each 14x14 digit at its position and nothing elsewhere
        expect = np.zeros((32, 32), np.uint8)
        expect[ya:ya + 14, xa:xa + 14] = cv2.resize(images[a], (14, 14),
                                                    interpolation=cv2.INTER_AREA)
        expect[yb:yb + 14, xb:xb + 14] = cv2.resize(images[b], (14, 14),
                                                    interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(d['img'], expect)
    # the left digits are the split's digits once each; the right ones a permutation of them
    assert sorted(left) == sorted(right) == sorted(ds.split_indices())


def test_splits_are_disjoint_deterministic_and_seeded():
    train = MNISTDigitPairs(split='train')
    val = MNISTDigitPairs(split='val')
    assert len(train) == 4000 and train[0]['img'].shape == (32, 32, 3)
    used_train = {i for d in train for i in d['source_idx']}
    used_val = {i for d in val for i in d['source_idx']}
    assert not used_train & used_val and len(used_train | used_val) == 5000
    # stratified: 100 canvases per left class in val
    assert np.bincount([val[k]['gt_label'] for k in range(len(val))]).tolist() == [100] * 10
    again = MNISTDigitPairs(split='val')
    assert all(np.array_equal(val[k]['img'], again[k]['img']) for k in (0, 500))
    other = MNISTDigitPairs(split='val', seed=1)
    assert [other[k]['source_idx'] for k in range(5)] != [val[k]['source_idx'] for k in range(5)]


def test_bad_arguments_name_the_fix():
    with pytest.raises(ValueError, match='label must be one of'):
        MNISTDigitPairs(label='sum')
    with pytest.raises(ValueError, match='digit_size must be in'):
        MNISTDigitPairs(digit_size=17)
    with pytest.raises(ValueError, match='split must be one of'):
        MNISTDigitPairs(split='test')
