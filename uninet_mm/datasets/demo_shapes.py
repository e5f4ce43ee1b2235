"""Embedded demo data: a seeded generator of a small COCO-format instance-segmentation set and
an ADE20K-format semantic-segmentation set of coloured shapes on textured backgrounds.

Scenes: 2-6 objects of five shape classes (circle, square, triangle, star, cross) with random
size (log-uniform, scale variety), rotation and colour over a textured background (smooth
colour noise plus stripes or checks). Objects may overlap; a later object occludes an earlier
one, but never hides more than ``MAX_OCCLUSION`` of it.

Masks are exact by construction: every shape is a polygon, rasterised once with pycocotools
(``frPyObjects`` + ``decode``), and the picture is painted from that very mask. The annotation
of an unoccluded object is its polygon (decoding it gives back the painted mask); the annotation
of an occluded object is the RLE of its visible part. Boxes are the tight boxes of the visible
masks (``pycocotools.mask.toBbox``), areas their pixel counts.

Layout written under ``root`` (default ``data/demo``)::

    coco/annotations/instances_{train,val}.json   coco/{train,val}/NNNNNN.jpg
    ade/images/{training,validation}/NNNNNN.jpg    ade/annotations/{training,validation}/NNNNNN.png

The ADE20K-format label maps follow ADE20K's convention: 0 is "unlabelled" (ignored with
``reduce_zero_label=True``), 1 the background, 2.. the shape classes, so the label indices
after reduction are those of :data:`SEG_CLASSES`. Each split draws from its own seed stream
(``SeedSequence([seed, split, index])``), so splits are disjoint and every image is
reproducible on its own. ``python -m uninet_mm.datasets.demo_shapes --root data/demo`` writes
both sets (it is what ``tools/run_demo.py`` calls when the data is missing).
"""
import argparse
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np
from pycocotools import mask as mask_utils

#: shape classes of the instance set (COCO category ids 1..5 in this order)
CLASSES = ('circle', 'square', 'triangle', 'star', 'cross')
#: classes of the semantic set after ``reduce_zero_label`` (label map values 1..6)
SEG_CLASSES = ('background', ) + CLASSES
PALETTE = [(220, 20, 60), (0, 130, 200), (60, 180, 75), (255, 200, 0), (145, 30, 180)]
SEG_PALETTE = [(90, 90, 90)] + PALETTE

#: an object may lose at most this fraction of its area to objects drawn over it
MAX_OCCLUSION = 0.4
#: version of the generated data: bump when the generator changes so old data is regenerated
DATA_VERSION = 2

DEFAULTS = dict(seed=0, img_size=128, num_train=600, num_val=120,
                seg_img_size=128, seg_num_train=400, seg_num_val=100)
_SPLIT_IDS = {'train': 0, 'val': 1, 'seg_train': 2, 'seg_val': 3}


# -- geometry ---------------------------------------------------------------------------------
def shape_polygon(label, cx, cy, radius, angle):
    """Vertices (N, 2) of shape ``label`` (index into :data:`CLASSES`) of circumradius
    ``radius`` centred at (cx, cy), rotated by ``angle`` radians."""
    name = CLASSES[label]
    if name == 'circle':
        t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        r = np.full_like(t, radius)
    elif name == 'square':
        t = np.arange(4) * np.pi / 2 + np.pi / 4
        r = np.full_like(t, radius)
    elif name == 'triangle':
        t = np.arange(3) * 2 * np.pi / 3 - np.pi / 2
        r = np.full_like(t, radius)
    elif name == 'star':
        t = np.arange(10) * np.pi / 5 - np.pi / 2
        r = np.where(np.arange(10) % 2 == 0, radius, radius * 0.45)
    elif name == 'cross':
        a = 0.36  # half arm width relative to the arm length
        pts = np.array([(a, 1), (a, a), (1, a), (1, -a), (a, -a), (a, -1), (-a, -1),
                        (-a, -a), (-1, -a), (-1, a), (-a, a), (-a, 1)]) * radius / np.hypot(1, a)
        t = np.arctan2(pts[:, 1], pts[:, 0])
        r = np.hypot(pts[:, 0], pts[:, 1])
    else:  # pragma: no cover - CLASSES and this function change together
        raise KeyError(name)
    t = t + angle
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def polygon_to_coco(poly):
    """(N, 2) vertices -> COCO polygon list ``[[x1, y1, x2, y2, ...]]`` (rounded to 0.01)."""
    return [[round(float(v), 2) for v in poly.reshape(-1)]]


def rasterize(segmentation, height, width):
    """Decode a COCO segmentation (polygon list or RLE dict) to a bool (H, W) mask."""
    if isinstance(segmentation, list):
        rles = mask_utils.frPyObjects(segmentation, height, width)
        rle = mask_utils.merge(rles)
    elif isinstance(segmentation['counts'], list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = dict(segmentation, counts=segmentation['counts'].encode()
                   if isinstance(segmentation['counts'], str) else segmentation['counts'])
    return mask_utils.decode(rle).astype(bool)


def encode_rle(mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


# -- painting ---------------------------------------------------------------------------------
def _hw(size):
    """``size`` (int or (h, w)) -> (h, w)."""
    return (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))


def _smooth_noise(rng, size, cells):
    """Bicubically up-sampled random grid: low-frequency noise in [0, 1], (h, w, 3)."""
    h, w = _hw(size)
    grid = rng.random((cells + 1, cells + 1, 3)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def textured_background(rng, size):
    """A random textured background (float RGB in [0, 255]): smooth colour noise, plus
    stripes or checks of random period and orientation, plus a little pixel noise."""
    h, w = _hw(size)
    base = rng.uniform(60, 200, 3).astype(np.float32)
    img = base + (_smooth_noise(rng, size, int(rng.integers(2, 6))) - 0.5) * 90
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(6, 20)
    theta = rng.uniform(0, np.pi)
    u = xx * np.cos(theta) + yy * np.sin(theta)
    kind = rng.integers(3)
    if kind == 0:  # stripes
        pattern = np.sin(2 * np.pi * u / period)
    elif kind == 1:  # checks
        v = -xx * np.sin(theta) + yy * np.cos(theta)
        pattern = np.sign(np.sin(2 * np.pi * u / period) * np.sin(2 * np.pi * v / period))
    else:  # plain noise
        pattern = np.zeros_like(u)
    img += pattern[..., None] * rng.uniform(8, 30) * rng.uniform(0.5, 1, 3)
    img += rng.normal(0, 4, img.shape)
    return img.clip(0, 255)


def _object_colour(rng, background_mean):
    """A random colour that differs clearly from the background's mean colour."""
    for _ in range(50):
        colour = rng.uniform(0, 255, 3)
        if np.abs(colour - background_mean).sum() > 150:
            return colour
    return 255 - background_mean


def make_scene(rng, size, max_objects=6, min_objects=2, radius_range=(0.055, 0.27)):
    """Draw one scene of ``size`` (int or (h, w)). Returns ``(image, objects)``: an (H, W, 3)
    uint8 RGB image and a list of dicts ``label`` (index into CLASSES), ``polygon`` ((N, 2)
    vertices), ``full`` (the rasterised polygon) and ``visible`` (bool masks), in drawing
    order. Circumradii are log-uniform in ``radius_range`` times the shorter image side."""
    h, w = _hw(size)
    img = textured_background(rng, size)
    bg_mean = img.reshape(-1, 3).mean(0)
    objects = []
    occupied = np.zeros((h, w), dtype=np.int32) - 1  # index of the top object per pixel
    radius_range = (radius_range[0] * min(h, w), radius_range[1] * min(h, w))
    min_area = max(12, int(40 * min(h, w) ** 2 / 128 ** 2))
    n = int(rng.integers(min_objects, max_objects + 1))
    attempts = 0
    while len(objects) < n and attempts < 60:
        attempts += 1
        label = int(rng.integers(len(CLASSES)))
        radius = float(np.exp(rng.uniform(*np.log(radius_range))))
        margin = radius * 0.6
        cx = rng.uniform(margin, w - margin)
        cy = rng.uniform(margin, h - margin)
        poly = shape_polygon(label, cx, cy, radius, rng.uniform(0, 2 * np.pi))
        poly = poly.clip(0, (w, h))
        full = rasterize(polygon_to_coco(poly), h, w)
        if full.sum() < min_area:
            continue
        # would this object hide too much of any earlier one?
        new_occ = occupied.copy()
        new_occ[full] = len(objects)
        ok = True
        for k, obj in enumerate(objects):
            visible = new_occ == k
            if (visible.sum() < (1 - MAX_OCCLUSION) * obj['full'].sum()
                    or visible.sum() < 0.75 * min_area):
                ok = False
                break
        if not ok:
            continue
        occupied = new_occ
        objects.append(dict(label=label, polygon=poly, full=full,
                            colour=_object_colour(rng, bg_mean)))
    for k, obj in enumerate(objects):
        obj['visible'] = occupied == k
        shade = 1 + 0.15 * (_smooth_noise(rng, size, 3)[..., :1] - 0.5)
        paint = obj['colour'] * shade
        img = np.where(obj['full'][..., None], paint, img)
    img = (img + rng.normal(0, 3, img.shape)).clip(0, 255).astype(np.uint8)
    return img, objects


def _rng(seed, split, index):
    return np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_IDS[split], index]))


def _write_image(path, rgb):
    os.makedirs(osp.dirname(path), exist_ok=True)
    if not cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                       [cv2.IMWRITE_JPEG_QUALITY, 95]):
        raise OSError(f'could not write {path}')


# -- the two data sets ------------------------------------------------------------------------
def generate_coco(root, seed=0, img_size=128, num_train=600, num_val=120):
    """Write the COCO-format instance set under ``root/coco`` (``img_size``: int or (h, w));
    returns the annotation paths by split."""
    out = {}
    categories = [dict(id=i + 1, name=name, supercategory='shape')
                  for i, name in enumerate(CLASSES)]
    for split, num in (('train', num_train), ('val', num_val)):
        images, annotations = [], []
        for index in range(num):
            img, objects = make_scene(_rng(seed, split, index), img_size)
            file_name = f'{index:06d}.jpg'
            _write_image(osp.join(root, 'coco', split, file_name), img)
            image_id = index + 1
            images.append(dict(id=image_id, file_name=file_name, height=img.shape[0],
                               width=img.shape[1]))
            for obj in objects:
                visible = obj['visible']
                if np.array_equal(visible, obj['full']):
                    segmentation = polygon_to_coco(obj['polygon'])
                else:
                    segmentation = encode_rle(visible)
                rle = mask_utils.encode(np.asfortranarray(visible.astype(np.uint8)))
                bbox = [round(float(v), 2) for v in mask_utils.toBbox(rle)]
                annotations.append(dict(
                    id=len(annotations) + 1, image_id=image_id, category_id=obj['label'] + 1,
                    segmentation=segmentation, area=int(visible.sum()), bbox=bbox, iscrowd=0))
        ann_file = osp.join(root, 'coco', 'annotations', f'instances_{split}.json')
        os.makedirs(osp.dirname(ann_file), exist_ok=True)
        with open(ann_file, 'w') as f:
            json.dump(dict(info=dict(description='uninet_mm demo shapes', version=DATA_VERSION,
                                     seed=seed),
                           images=images, annotations=annotations, categories=categories), f)
        out[split] = ann_file
    return out


def generate_ade(root, seed=0, img_size=128, num_train=400, num_val=100):
    """Write the ADE20K-format semantic set under ``root/ade``; label 0 = unlabelled,
    1 = background, 2.. = the shapes (see :data:`SEG_CLASSES`)."""
    for split, num, name in (('seg_train', num_train, 'training'),
                             ('seg_val', num_val, 'validation')):
        for index in range(num):
            img, objects = make_scene(_rng(seed, split, index), img_size)
            label = np.ones(img.shape[:2], dtype=np.uint8)
            for obj in objects:
                label[obj['visible']] = obj['label'] + 2
            _write_image(osp.join(root, 'ade', 'images', name, f'{index:06d}.jpg'), img)
            path = osp.join(root, 'ade', 'annotations', name, f'{index:06d}.png')
            os.makedirs(osp.dirname(path), exist_ok=True)
            cv2.imwrite(path, label)
    return osp.join(root, 'ade')


def _stamp(params):
    return json.loads(json.dumps(dict(params, version=DATA_VERSION)))  # tuples -> lists


def ensure_demo_data(root='data/demo', force=False, **params):
    """Generate the demo sets under ``root`` unless data of the same version and parameters is
    already there. Returns ``root``."""
    params = {**DEFAULTS, **params}
    stamp_file = osp.join(root, 'demo_shapes.json')
    if not force and osp.isfile(stamp_file):
        with open(stamp_file) as f:
            if json.load(f) == _stamp(params):
                return root
    for sub in ('coco', 'ade'):  # no stale files of another generation
        shutil.rmtree(osp.join(root, sub), ignore_errors=True)
    os.makedirs(root, exist_ok=True)
    generate_coco(root, params['seed'], params['img_size'], params['num_train'],
                  params['num_val'])
    generate_ade(root, params['seed'], params['seg_img_size'], params['seg_num_train'],
                 params['seg_num_val'])
    with open(stamp_file, 'w') as f:
        json.dump(_stamp(params), f, indent=1)
    return root


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', default='data/demo', help='output folder (data/demo)')
    parser.add_argument('--force', action='store_true', help='regenerate even if present')
    for key, value in DEFAULTS.items():
        parser.add_argument('--' + key.replace('_', '-'), type=int, default=value)
    args = parser.parse_args(argv)
    params = {k: getattr(args, k) for k in DEFAULTS}
    ensure_demo_data(args.root, force=args.force, **params)
    print(f'demo data under {args.root}: coco/ (instances, {params["num_train"]} train / '
          f'{params["num_val"]} val) and ade/ (semantic, {params["seg_num_train"]} training / '
          f'{params["seg_num_val"]} validation)')


if __name__ == '__main__':
    main()
