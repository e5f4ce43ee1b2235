"""Save a trained checkpoint in its inference form (structural reparameterisation, as
mmpretrain's ``tools/model_converters/reparameterize_model.py`` for RepVGG/MobileOne)::

    python tools/model_converters/reparameterize_model.py CONFIG CKPT OUT [--force]

builds the model of CONFIG (a detector, segmentor or classifier), loads CKPT strictly, replaces
every module that has an inference form by its deployed module (the UniNet backbone's
``switch_to_deploy()``, :func:`uninet_mm.models.deploy.reparameterize`) and saves the weights to
OUT. The result loads strictly into the model built with ``model.backbone.deploy=True``::

    python tools/test.py CONFIG OUT --cfg-options model.backbone.deploy=True

OUT is never the input checkpoint, and an existing OUT is kept unless ``--force`` is given.
(The Swin/PVT DSM retrofits have no ``deploy=True`` constructor: test those with
``tools/test.py --deploy`` on the trained checkpoint.)
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

PROG = 'reparameterize_model.py'


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        prog=PROG, description='Convert a trained checkpoint into the inference form '
        '(deployed modules) that loads into model.backbone.deploy=True')
    parser.add_argument('config', help='config file of the model')
    parser.add_argument('checkpoint', help='trained checkpoint of that model')
    parser.add_argument('out', help='where to save the deployed checkpoint (.pth)')
    parser.add_argument('--force', action='store_true', help='overwrite an existing OUT')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, xxx=yyy pairs')
    return parser.parse_args(argv)


def check_paths(args):
    """One-line refusals, before anything is built or written."""
    if not osp.isfile(args.checkpoint):
        sys.exit(f'{PROG}: checkpoint {args.checkpoint!r} not found')
    if osp.exists(args.out) and osp.samefile(args.out, args.checkpoint):
        sys.exit(f'{PROG}: OUT {args.out!r} is the input checkpoint; choose another OUT '
                 f'(the trained checkpoint is kept)')
    if osp.exists(args.out) and not args.force:
        sys.exit(f'{PROG}: {args.out!r} exists; pass --force to overwrite it')


def main(argv=None):
    args = parse_args(argv)
    check_paths(args)  # before the (slow) imports
    import torch
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import load_checkpoint

    import uninet_mm  # noqa: F401  (registers the models; safe checkpoint loading)
    from uninet_mm.models.deploy import reparameterize
    from uninet_mm.utils.config import library_of

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(library_of(cfg, PROG))
    model = MODELS.build(cfg.model)
    ckpt = load_checkpoint(model, args.checkpoint, map_location='cpu', strict=True,
                           revise_keys=[(r'^module\.', '')])
    before = set(model.state_dict())
    model = reparameterize(model.eval())
    state_dict = model.state_dict()
    if set(state_dict) == before:
        sys.exit(f'{PROG}: no module of {args.config} has an inference form (a UniNet '
                 f'backbone or a DSM); nothing to convert')
    meta = dict(ckpt.get('meta', {}) if isinstance(ckpt, dict) else {})
    meta.update(deploy=True, converted_from=osp.abspath(args.checkpoint))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    tmp = args.out + '.tmp'
    torch.save(dict(meta=meta, state_dict=state_dict), tmp)
    os.replace(tmp, args.out)  # a failed save leaves no half-written OUT
    print(f'{PROG}: {len(before)} -> {len(state_dict)} tensors, saved {args.out}; load it with '
          f'--cfg-options model.backbone.deploy=True')
    return args.out


if __name__ == '__main__':
    main()
