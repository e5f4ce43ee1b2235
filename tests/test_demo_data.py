"""The embedded demo data: deterministic, exact masks, disjoint splits, both formats readable
by the libraries' own datasets."""
import hashlib
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from uninet_mm.datasets import demo_shapes as ds

pytestmark = pytest.mark.usefixtures('one_thread')

SMALL = dict(seed=3, img_size=(72, 88), num_train=6, num_val=4, seg_img_size=64,
             seg_num_train=4, seg_num_val=3)


def _tree_digest(root):
    """sha1 of every file under root, by relative path."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = hashlib.sha1(f.read()).hexdigest()
    return out


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('demo'))
    ds.ensure_demo_data(root, **SMALL)
    return root


def test_same_seed_same_files(demo_root, tmp_path):
    other = str(tmp_path / 'again')
    ds.ensure_demo_data(other, **SMALL)
    assert _tree_digest(demo_root) == _tree_digest(other)
    changed = str(tmp_path / 'seed4')
    ds.ensure_demo_data(changed, **dict(SMALL, seed=4))
    a, b = _tree_digest(demo_root), _tree_digest(changed)
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a if k.endswith('.jpg'))


def test_regenerates_only_when_parameters_change(demo_root, tmp_path):
    root = str(tmp_path / 'd')
    ds.ensure_demo_data(root, **SMALL)
    stamp = osp.join(root, 'demo_shapes.json')
    mtime = os.stat(stamp).st_mtime_ns
    ds.ensure_demo_data(root, **SMALL)
    assert os.stat(stamp).st_mtime_ns == mtime
    ds.ensure_demo_data(root, **dict(SMALL, num_val=2))
    assert len(os.listdir(osp.join(root, 'coco', 'val'))) == 2  # no stale files


def test_coco_masks_exact_and_boxes_tight(demo_root):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    n_poly = n_rle = 0
    for split in ('train', 'val'):
        coco = COCO(osp.join(demo_root, 'coco', 'annotations', f'instances_{split}.json'))
        assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(ds.CLASSES)
        for img_id, info in coco.imgs.items():
            assert (info['height'], info['width']) == SMALL['img_size']
            # redraw the scene from its seed: the annotation must decode to the drawn mask
            _, objects = ds.make_scene(ds._rng(SMALL['seed'], split, img_id - 1),
                                       SMALL['img_size'])
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
            assert len(anns) == len(objects) >= 1
            for ann, obj in zip(anns, objects):
                decoded = coco.annToMask(ann).astype(bool)
                assert np.array_equal(decoded, obj['visible'])
                assert np.array_equal(ds.rasterize(ann['segmentation'], *decoded.shape),
                                      obj['visible'])
                if isinstance(ann['segmentation'], list):
                    n_poly += 1
                else:
                    n_rle += 1
                assert ann['category_id'] == obj['label'] + 1
                assert ann['area'] == decoded.sum() and ann['iscrowd'] == 0
                ys, xs = np.nonzero(decoded)
                x, y, w, h = ann['bbox']
                assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
                rle = mask_utils.encode(np.asfortranarray(decoded.astype(np.uint8)))
                assert mask_utils.area(rle) == ann['area']
    assert n_poly > 0 and n_rle > 0  # both encodings are exercised (occlusion happens)


def test_splits_disjoint(demo_root):
    for sub, splits in (('coco', ('train', 'val')),
                        ('ade/images', ('training', 'validation'))):
        hashes = []
        for split in splits:
            folder = osp.join(demo_root, sub, split)
            hashes.append({hashlib.sha1(open(osp.join(folder, f), 'rb').read()).hexdigest()
                           for f in os.listdir(folder)})
            assert len(hashes[-1]) == len(os.listdir(folder))  # no duplicates inside a split
        assert not hashes[0] & hashes[1]
    # different seed streams: the first val scene is not the first train scene
    a, _ = ds.make_scene(ds._rng(0, 'train', 0), 64)
    b, _ = ds.make_scene(ds._rng(0, 'val', 0), 64)
    assert not np.array_equal(a, b)


def test_ade_label_maps(demo_root):
    for split, num in (('training', SMALL['seg_num_train']),
                       ('validation', SMALL['seg_num_val'])):
        names = sorted(os.listdir(osp.join(demo_root, 'ade', 'annotations', split)))
        assert len(names) == num
        seg_split = 'seg_train' if split == 'training' else 'seg_val'
        for i, name in enumerate(names):
            label = cv2.imread(osp.join(demo_root, 'ade', 'annotations', split, name),
                               cv2.IMREAD_UNCHANGED)
            img = cv2.imread(osp.join(demo_root, 'ade', 'images', split,
                                      name.replace('.png', '.jpg')))
            assert label.dtype == np.uint8 and label.shape == img.shape[:2]
            assert label.min() >= 1 and label.max() <= len(ds.SEG_CLASSES)
            _, objects = ds.make_scene(ds._rng(SMALL['seed'], seg_split, i),
                                       SMALL['seg_img_size'])
            for obj in objects:  # exact: every visible pixel carries its class
                assert (label[obj['visible']] == obj['label'] + 2).all()
            covered = np.any([o['visible'] for o in objects], axis=0)
            assert (label[~covered] == 1).all()


def test_readable_by_library_datasets(demo_root):
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    from mmdet.datasets import CocoDataset
    coco = CocoDataset(data_root=osp.join(demo_root, 'coco'),
                       ann_file='annotations/instances_val.json',
                       data_prefix=dict(img='val/'), metainfo=dict(classes=ds.CLASSES),
                       test_mode=True, pipeline=[])
    assert len(coco) == SMALL['num_val']
    assert all(0 <= inst['bbox_label'] < len(ds.CLASSES)
               for i in range(len(coco)) for inst in coco[i]['instances'])
    from mmseg.datasets import BaseSegDataset
    seg = BaseSegDataset(data_root=osp.join(demo_root, 'ade'),
                         data_prefix=dict(img_path='images/validation',
                                          seg_map_path='annotations/validation'),
                         metainfo=dict(classes=ds.SEG_CLASSES), img_suffix='.jpg',
                         seg_map_suffix='.png', reduce_zero_label=True, pipeline=[])
    assert len(seg) == SMALL['seg_num_val']


def test_cli_writes_stamp(tmp_path):
    ds.main(['--root', str(tmp_path), '--num-train', '2', '--num-val', '1', '--img-size', '48',
             '--seg-num-train', '1', '--seg-num-val', '1', '--seg-img-size', '48'])
    with open(tmp_path / 'demo_shapes.json') as f:
        stamp = json.load(f)
    assert stamp['num_train'] == 2 and stamp['version'] == ds.DATA_VERSION
