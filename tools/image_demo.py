"""Run a detection or segmentation checkpoint on images and write a PNG with the predictions,
drawn by the library's own visualizer (boxes, labels and masks for MMDetection; the class
overlay for MMSegmentation). The library is picked from the config's ``default_scope``::

    python tools/image_demo.py demo.jpg configs/mmdet/mask_rcnn_uninet_b3_3x.py CKPT \
        --out-file outputs/demo.png
    python tools/image_demo.py a.jpg,b.jpg,c.jpg CONFIG CKPT --out-file grid.png   # a row

Small images are drawn enlarged (``--vis-scale``, default: up to about 512 px) so that labels
stay legible; the predictions are scaled with them, the model sees the original image.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmcv  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.model.utils import revert_sync_batchnorm  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402

from uninet_mm.apis.loading import check_model_checkpoint  # noqa: E402
from uninet_mm.apis.workdir import UserInputError, check_output  # noqa: E402
from uninet_mm.utils.config import CfgOptionsAction as DictAction  # noqa: E402
from uninet_mm.utils.safe_load import load_file  # noqa: E402

#: what --out-file may end with (the encoders of cv2.imwrite)
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')

import uninet_mm  # noqa: E402,F401  (registers the models; safe checkpoint loading)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('img', help='image file, or several separated by commas (one row)')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-file', default='outputs/image_demo.png', help='output PNG')
    parser.add_argument('--force', action='store_true', help='write over an existing --out-file')
    parser.add_argument('--device', default='cuda:0' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: draw boxes scoring at least this')
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='segmentation: opacity of the class overlay')
    parser.add_argument('--vis-scale', type=float, default=None,
                        help='draw enlarged by this factor (default: to about 512 px)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config')
    return parser.parse_args(argv)


def load_model(config, checkpoint, device='cpu', cfg_options=None):
    """Build the model of ``config`` with ``checkpoint`` loaded; returns (model, library)."""
    cfg = Config.fromfile(config) if not isinstance(config, Config) else config
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'init_cfg' in cfg.model.get('backbone', {}):
        cfg.model.backbone.init_cfg = None  # the checkpoint has all weights
    library = cfg.get('default_scope', None)
    if library == 'mmdet':
        from mmdet.apis import init_detector
        model = init_detector(cfg, checkpoint, device=device)
    elif library == 'mmseg':
        from mmseg.apis import init_model
        model = init_model(cfg, checkpoint, device=device)
    else:
        raise ValueError(f'{config}: image_demo draws detection (mmdet) and segmentation '
                         f'(mmseg) models; default_scope is {library!r}')
    # refuse a checkpoint of another model (the library loads it with strict=False)
    check_model_checkpoint(model, load_file(checkpoint), checkpoint, 'tools/image_demo.py')
    if device == 'cpu':
        model = revert_sync_batchnorm(model)
    return model, library


def check_inputs(paths, out_file, force=False):
    """Refuse an empty image list, a file that is no image, an output that is no image name,
    is one of the inputs or exists (without ``force``), before anything is built."""
    tool = 'tools/image_demo.py'
    if not paths:
        raise UserInputError(f'{tool}: no image given; pass an image file, or several '
                             f'separated by commas (a.jpg,b.jpg)')
    for p in paths:
        if not osp.isfile(p):
            raise UserInputError(f'{tool}: image {p!r} does not exist')
        if mmcv.imread(p) is None:
            raise UserInputError(f'{tool}: {p!r} is not an image (OpenCV cannot decode it); '
                                 f'pass a .jpg/.png file')
    if not out_file.lower().endswith(IMAGE_EXTENSIONS):
        raise UserInputError(f'{tool}: --out-file {out_file!r} has no image extension; end it '
                             f'with one of {IMAGE_EXTENSIONS} (e.g. demo.png)')
    check_output(out_file, paths, force, tool)


def _scale_sample(sample, scale, library):
    """Scale the predictions of ``sample`` by ``scale`` (for drawing on an enlarged image)."""
    if library == 'mmdet':
        inst = sample.pred_instances
        inst.bboxes = inst.bboxes * scale
        if 'masks' in inst and len(inst) > 0:
            masks = inst.masks.float()[None]
            size = (round(masks.shape[-2] * scale), round(masks.shape[-1] * scale))
            inst.masks = F.interpolate(masks, size=size, mode='nearest')[0].bool()
    else:
        seg = sample.pred_sem_seg.data.float()[None]
        size = (round(seg.shape[-2] * scale), round(seg.shape[-1] * scale))
        # a new PixelData: PixelData refuses data whose size differs from its own
        sample.pred_sem_seg = PixelData(
            data=F.interpolate(seg, size=size, mode='nearest')[0].long())
    return sample


def draw(model, library, img_path, score_thr=0.3, opacity=0.5, vis_scale=None):
    """Predict on one image and return the painted RGB array."""
    img = mmcv.imread(img_path, channel_order='rgb')
    if library == 'mmdet':
        from mmdet.apis import inference_detector
        from mmdet.visualization import DetLocalVisualizer as Vis
        sample = inference_detector(model, img_path)
    else:
        from mmseg.apis import inference_model
        from mmseg.visualization import SegLocalVisualizer as Vis
        sample = inference_model(model, img_path)
    if vis_scale is None:
        vis_scale = max(1, int(512 // max(img.shape[:2])))
    if vis_scale != 1:
        img = mmcv.imrescale(img, vis_scale, interpolation='nearest')
        sample = _scale_sample(sample, vis_scale, library)
    name = f'uninet_image_demo_{id(model)}'
    vis = Vis.get_instance(name, vis_backends=[dict(type='LocalVisBackend')], save_dir=None)
    if library == 'mmseg':
        vis.alpha = opacity
    vis.dataset_meta = model.dataset_meta
    kwargs = dict(pred_score_thr=score_thr) if library == 'mmdet' else {}
    vis.add_datasample(osp.basename(img_path), img, data_sample=sample, draw_gt=False,
                       show=False, **kwargs)
    return vis.get_image()


def run(img, config, checkpoint, out_file, device='cpu', score_thr=0.3, opacity=0.5,
        vis_scale=None, cfg_options=None, force=False):
    """Draw the predictions on one or several (comma-separated) images into ``out_file``."""
    paths = [p for p in img.split(',') if p] if isinstance(img, str) else list(img)
    check_inputs(paths, out_file, force)
    model, library = load_model(config, checkpoint, device, cfg_options)
    tiles = [draw(model, library, p, score_thr, opacity, vis_scale) for p in paths]
    height = max(t.shape[0] for t in tiles)
    pad = 4
    row = np.full((height, sum(t.shape[1] for t in tiles) + pad * (len(tiles) - 1), 3), 255,
                  dtype=np.uint8)
    x = 0
    for t in tiles:
        row[:t.shape[0], x:x + t.shape[1]] = t
        x += t.shape[1] + pad
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    mmcv.imwrite(mmcv.rgb2bgr(row), out_file)
    return out_file


def main(argv=None):
    args = parse_args(argv)
    out = run(args.img, args.config, args.checkpoint, args.out_file, args.device,
              args.score_thr, args.opacity, args.vis_scale, args.cfg_options, args.force)
    print(f'predictions drawn into {out}')


if __name__ == '__main__':
    try:
        main()
    except UserInputError as e:
        raise SystemExit(f'error: {e}') from None
