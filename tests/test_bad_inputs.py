"""A catalogue of bad inputs (configs, arch values, checkpoints, images, command lines), one
parametrised case per input: each asserts that the error names the problem (and the way out),
and, for the inputs that could lose work, that the files already written are unchanged.

The table of the catalogue is docs/bad_inputs.md. Tools run in-process (``main(argv)``); the
argparse errors are read from stderr.
"""
import hashlib
import importlib.util
import os
import os.path as osp
import re
import shutil
import sys
import zipfile

import pytest
import torch

from uninet_mm.apis.loading import check_model_checkpoint, model_record
from uninet_mm.apis.workdir import UserInputError
from uninet_mm.engine.guards import NonFiniteLossError, NonFiniteLossHook
from uninet_mm.models import UniNet
from uninet_mm.utils.safe_load import CheckpointFileError, UnsafeCheckpointError

pytestmark = pytest.mark.usefixtures('one_thread')

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CLS_CONFIG = osp.join(ROOT, 'configs/cls/uninet_mnist_demo.py')
DET_CONFIG = osp.join(ROOT, 'configs/mmdet/mask_rcnn_uninet_demo.py')

#: a small arch (all widths multiples of the head dimension 16)
ARCH = dict(gops=['DWConv', 'DWConv', 'SA'], dsms=[None, 'L', 'LG'], strides=[1, 2, 2],
            widths=[16, 32, 32], repeats=[1, 1, 1], expansions=[1, 2, 2], stem_width=16,
            head_dim=16, window_size=4)


def net(arch, **kwargs):
    """UniNet of ``arch``, returning its last stage unless told otherwise."""
    kwargs.setdefault('out_indices', (-1,))
    return UniNet(arch, **kwargs)


def tool(name):
    """tools/<name>.py as a module (shared with tests/test_tools.py)."""
    module_name = f'uninet_tools_{name}'
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name,
                                                      osp.join(ROOT, 'tools', f'{name}.py'))
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


def cls_options(n=16, epochs=1, lr=None):
    """The MNIST demo config on 16 SklearnDigits samples, batch 8: two iterations an epoch."""
    out = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        out += [f'{loader}.dataset.type=SklearnDigits', f'{loader}.dataset.indices={n}',
                f'{loader}.batch_size=8']
    out += [f'train_cfg.max_epochs={epochs}', 'default_hooks.checkpoint.interval=1',
            'default_hooks.logger.interval=1']
    if lr is not None:
        out.append(f'optim_wrapper.optimizer.lr={lr}')
    return out


def snapshot(folder):
    """{relative path: sha256} of every file under ``folder``."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = osp.join(root, f)
            with open(p, 'rb') as fh:
                out[osp.relpath(p, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def raises(exc, fn, *args, **kwargs):
    """The message of the ``exc`` that ``fn(*args, **kwargs)`` raises."""
    with pytest.raises(exc) as e:
        fn(*args, **kwargs)
    return str(e.value)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A real tools/train.py run of the MNIST demo classifier: work dir with epoch_1.pth."""
    work = str(tmp_path_factory.mktemp('trained'))
    tool('train').main([CLS_CONFIG, '--work-dir', work, '--no-validate',
                        '--cfg-options', *cls_options()])
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    return work


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    import cv2
    import numpy as np
    path = str(tmp_path_factory.mktemp('img') / 'a.png')
    cv2.imwrite(path, np.random.RandomState(0).randint(0, 255, (64, 80, 3), dtype=np.uint8))
    return path


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


CASES = []


def case(name, needs=()):
    """Register ``fn(tmp_path, **fixtures) -> (message, pattern)`` as one catalogue entry."""
    def deco(fn):
        CASES.append(pytest.param(fn, needs, id=name))
        return fn
    return deco


@pytest.mark.parametrize('fn,needs', CASES)
def test_bad_input(fn, needs, tmp_path, request):
    kwargs = {n: request.getfixturevalue(n) for n in needs}
    message, pattern = fn(tmp_path, **kwargs)
    assert re.search(pattern, message, re.S), message


# ================================================================= 1. nothing written is lost
def _copy_work(trained, tmp):
    work = str(tmp / 'work')
    shutil.copytree(trained, work)
    return work


@case('train: work dir holds checkpoints, neither --resume nor --overwrite', ['trained'])
def _(tmp, trained):
    work = _copy_work(trained, tmp)
    before = snapshot(work)
    msg = raises(UserInputError, tool('train').main,
                 [CLS_CONFIG, '--work-dir', work, '--cfg-options', *cls_options()])
    assert snapshot(work) == before
    return msg, r'already holds checkpoints \(epoch_1\.pth.*--resume.*--overwrite'


@case('train: --resume together with --overwrite', ['trained'])
def _(tmp, trained):
    work = _copy_work(trained, tmp)
    before = snapshot(work)
    msg = raises(UserInputError, tool('train').main,
                 [CLS_CONFIG, '--work-dir', work, '--resume', '--overwrite'])
    assert snapshot(work) == before
    return msg, r'--resume continues.*--overwrite starts it over; give one of them'


@case('train: --resume PATH that does not exist')
def _(tmp):
    return raises(UserInputError, tool('train').main,
                  [CLS_CONFIG, '--work-dir', str(tmp), '--resume', str(tmp / 'nope.pth')]), \
        r"--resume '.*nope\.pth': no such checkpoint"


@case('train: --resume with a weights-only checkpoint', ['trained'])
def _(tmp, trained):
    ckpt = torch.load(osp.join(trained, 'epoch_1.pth'), weights_only=True)
    path = str(tmp / 'weights.pth')
    torch.save({'state_dict': ckpt['state_dict']}, path)
    msg = raises(UserInputError, tool('train').main,
                 [CLS_CONFIG, '--work-dir', str(tmp / 'w'), '--resume', path, '--no-validate',
                  '--cfg-options', *cls_options()])
    assert not osp.exists(osp.join(tmp, 'w', 'epoch_1.pth'))
    return msg, r'holds weights only.*drop --resume.*load_from='


@case('train: diverged run (lr=1e30) over a work dir with a good checkpoint', ['trained'])
def _(tmp, trained):
    work = _copy_work(trained, tmp)
    before = snapshot(work)
    good = osp.join(work, 'epoch_1.pth')
    msg = raises(NonFiniteLossError, tool('train').main,
                 [CLS_CONFIG, '--work-dir', work, '--overwrite', '--no-validate',
                  '--cfg-options', *cls_options(n=32, lr=1e30), f'load_from={good}'])
    after = snapshot(work)
    assert {k: v for k, v in after.items() if k.endswith('.pth')} == \
        {k: v for k, v in before.items() if k.endswith('.pth')}  # the good one is intact
    return msg, r'non-finite loss at iteration \d+ .*learning rate.*AMP'


@case('convert_official: DST is SRC')
def _(tmp):
    src = tmp / 'released.pth'
    torch.save({'model': {'stem.0.weight': torch.ones(2)}}, src)
    before = snapshot(tmp)
    msg = raises(SystemExit, tool('convert_official').main, [str(src), str(src), '--arch', 'b1'])
    assert snapshot(tmp) == before
    return msg, r'is the input.*choose another output path'


@case('convert_official: DST exists, no --force')
def _(tmp):
    src, dst = tmp / 'released.pth', tmp / 'ours.pth'
    torch.save({'model': {'stem.0.weight': torch.ones(2)}}, src)
    dst.write_bytes(b'earlier output')
    before = snapshot(tmp)
    msg = raises(SystemExit, tool('convert_official').main, [str(src), str(dst), '--arch', 'b1'])
    assert snapshot(tmp) == before
    return msg, r'already exists; pass --force'


@case('image_demo: --out-file is the input image', ['image'])
def _(tmp, image):
    img = shutil.copy(image, tmp / 'a.png')
    before = snapshot(tmp)
    msg = raises(UserInputError, tool('image_demo').run, str(img), DET_CONFIG, 'unused.pth',
                 str(img))
    assert snapshot(tmp) == before
    return msg, r'is the input .*destroy the input'


@case('image_demo: --out-file exists, no --force', ['image'])
def _(tmp, image):
    out = tmp / 'out.png'
    out.write_bytes(b'earlier drawing')
    before = snapshot(tmp)
    msg = raises(UserInputError, tool('image_demo').run, image, DET_CONFIG, 'unused.pth',
                 str(out))
    assert snapshot(tmp) == before
    return msg, r'already exists; pass --force'


@case('test: --out file exists, no --force')
def _(tmp):
    out = tmp / 'preds.pkl'
    out.write_bytes(b'earlier predictions')
    before = snapshot(tmp)
    msg = raises(UserInputError, tool('test').main,
                 [CLS_CONFIG, str(tmp / 'x.pth'), '--out', str(out)])
    assert snapshot(tmp) == before
    return msg, r'already exists; pass --force'


def _argparse_error(capsys, fn, argv):
    with pytest.raises(SystemExit) as e:
        fn(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


def _existing_output_case(name, argv):
    """A tool whose parser refuses an existing output file (``argv(out)``) and leaves it."""
    @case(f'{name}: its output file exists, no --force', ['capsys'])
    def _(tmp, capsys):
        out = tmp / 'earlier.json'
        out.write_text('{"earlier": 1}')
        msg = _argparse_error(capsys, tool(name).parse_args, argv(str(out)))
        assert out.read_text() == '{"earlier": 1}'
        return msg, r'already exists; pass --force'


_existing_output_case('get_flops', lambda out: ['--arch', 'b0', '--json', out])
_existing_output_case('benchmark_backbones', lambda out: ['--models', 'uninet_b0', '--out', out])


@case('benchmark_train_step: --out is one of the configs', ['capsys'])
def _(tmp, capsys):
    cfg = shutil.copy(DET_CONFIG, tmp / 'det.py')
    before = snapshot(tmp)
    msg = _argparse_error(capsys, tool('benchmark_train_step').parse_args,
                          [str(cfg), '--out', str(cfg)])
    assert snapshot(tmp) == before
    return msg, r'is the input .*destroy the input'


# ============================================================= 2. loading that matches
def _save_backbone(tmp, arch, meta=None):
    path = str(tmp / 'pre.pth')
    torch.save({'state_dict': net(arch).state_dict(), 'meta': meta or {}}, path)
    return path


def _pretrained(arch, path, **kw):
    return net(arch, init_cfg=dict(type='Pretrained', checkpoint=path, **kw))


@case('Pretrained: checkpoint of a wider arch')
def _(tmp):
    path = _save_backbone(tmp, dict(ARCH, widths=[16, 48, 48]))
    msg = raises(ValueError, _pretrained(ARCH, path).init_weights)
    return msg, r'fills \d+ of the \d+ backbone tensors.*another shape.*another UniNet ' \
        r'arch.*strict=False'


@case('Pretrained: checkpoint of a deeper arch (extra blocks)')
def _(tmp):
    path = _save_backbone(tmp, dict(ARCH, repeats=[1, 2, 2]))
    msg = raises(ValueError, _pretrained(ARCH, path).init_weights)
    return msg, r'fills (\d+) of the \1 backbone tensors: 0 not filled.* [1-9]\d* checkpoint ' \
        r'tensors have no place.*another UniNet arch'


@case('Pretrained: checkpoint of a shallower arch (blocks left random)')
def _(tmp):
    path = _save_backbone(tmp, dict(ARCH, repeats=[1, 1, 0], gops=['DWConv', 'DWConv',
                                                                   'DWConv']))
    msg = raises(ValueError, _pretrained(ARCH, path).init_weights)
    return msg, r'[1-9]\d* not filled \(0 of them of another shape in the checkpoint\), 0 ' \
        r'checkpoint tensors have no place.*smaller arch.*strict=False'


@case('Pretrained: checkpoint whose meta records another arch')
def _(tmp):
    path = _save_backbone(tmp, dict(ARCH, widths=[16, 48, 48]), meta={'arch': 'b3'})
    msg = raises(ValueError, _pretrained(ARCH, path).init_weights)
    return msg, r"records arch 'b3'"


@case('Pretrained: checkpoint of another model (no key matches)')
def _(tmp):
    path = str(tmp / 'swin.pth')
    torch.save({'state_dict': {'patch_embed.proj.weight': torch.zeros(96, 3, 4, 4)}}, path)
    msg = raises(ValueError, _pretrained(ARCH, path).init_weights)
    return msg, r'matches none of this backbone.*patch_embed.*prefix'


@case('test: checkpoint recorded for another arch (same shapes, as b0 vs b1)', ['trained'])
def _(tmp, trained):
    msg = raises(UserInputError, tool('test').main, [
        CLS_CONFIG, osp.join(trained, 'epoch_1.pth'), '--work-dir', str(tmp),
        '--cfg-options', *cls_options(), 'model.backbone.arch.input_size=64'])
    return msg, r'was written for ImageClassifier \(config uninet_mnist_demo\.py\), UniNet ' \
        r'arch .*differ in input_size: 32 in the checkpoint, 64 here.*pass the checkpoint of ' \
        r'this config'


@case('test: checkpoint of other shapes, no record', ['trained'])
def _(tmp, trained):
    ckpt = torch.load(osp.join(trained, 'epoch_1.pth'), weights_only=True)
    path = str(tmp / 'norecord.pth')
    torch.save({'state_dict': ckpt['state_dict'], 'meta': {}}, path)
    msg = raises(UserInputError, tool('test').main, [
        CLS_CONFIG, path, '--work-dir', str(tmp), '--cfg-options', *cls_options(),
        'model.head.num_classes=7'])
    return msg, r'fills \d+ of the \d+ tensors of this model \([1-9]\d* of another shape.*' \
        r'another arch or number of classes'


@case('image_demo: classifier checkpoint into the detector', ['trained', 'image'])
def _(tmp, trained, image):
    msg = raises(UserInputError, tool('image_demo').run, image, DET_CONFIG,
                 osp.join(trained, 'epoch_1.pth'), str(tmp / 'o.png'))
    assert not osp.exists(tmp / 'o.png')
    return msg, r'was written for ImageClassifier.*this model is a MaskRCNN'


def _meta_model(arch):
    from mmpretrain.registry import MODELS
    with torch.device('meta'):
        return MODELS.build(dict(
            type='ImageClassifier', _scope_='mmpretrain',
            backbone=dict(type='UniNet', arch=arch, out_indices=(-1,)),
            head=dict(type='UniNetClsHead', num_classes=1000, in_channels=256)))


@case('test/image_demo: converted b0 checkpoint into a b1 model')
def _(tmp):
    model = _meta_model('b1')
    ckpt = {'state_dict': model.state_dict(), 'meta': {'arch': 'b0', 'source': 'b0.pth'}}
    msg = raises(UserInputError, check_model_checkpoint, model, ckpt, 'b0.pth', 'tools/test.py')
    return msg, r"holds UniNet arch 'b0'.*this model's backbone is 'b1'"


@case('test/image_demo: b0 checkpoint written by train.py into a b1 model')
def _(tmp):
    ckpt = {'state_dict': _meta_model('b1').state_dict(),
            'meta': {'uninet': model_record(_meta_model('b0'))}}
    msg = raises(UserInputError, check_model_checkpoint, _meta_model('b1'), ckpt, 'c.pth')
    return msg, r"UniNet arch 'b0'; this model's backbone is 'b1'"


@case('test/image_demo: Swin classifier checkpoint into a b1 model')
def _(tmp):
    ckpt = {'state_dict': {'backbone.patch_embed.projection.weight': torch.zeros(1)}}
    msg = raises(UserInputError, check_model_checkpoint, _meta_model('b1'), ckpt, 'swin.pth')
    return msg, r'fills 0 of the \d+ tensors.*checkpoint of another model'


# ========================================================== 3. training stops when it breaks
@case('training: checkpoint of non-finite weights')
def _(tmp):
    from types import SimpleNamespace
    runner = SimpleNamespace(iter=7, work_dir=str(tmp))
    ckpt = {'state_dict': {'w': torch.tensor([1., float('nan')]), 'n': torch.tensor([3])}}
    msg = raises(NonFiniteLossError, NonFiniteLossHook().before_save_checkpoint, runner, ckpt)
    return msg, r'weights are not finite \(1 tensors.*checkpoint was not written'


# ========================================================= 4. validation at construction
def _arch_case(name, pattern, exc=(TypeError, ValueError), **change):
    @case(f'arch: {name}')
    def _(tmp):
        arch = dict(ARCH, **{k: v for k, v in change.items() if k in ARCH or k == 'input_size'})
        kwargs = {k: v for k, v in change.items() if k not in arch}
        return raises(exc, net, arch, **kwargs), pattern


_arch_case('widths 24.5', r"arch\['widths'\]\[1\] must be an integer, got 24\.5",
           widths=[16, 24.5, 32])
_arch_case("widths '24'", r"arch\['widths'\]\[0\] must be an integer, got '24'",
           widths=['24', 32, 32])
_arch_case('widths an int', r"arch\['widths'\] must be a list", widths=32)
_arch_case('repeats 1.5', r"arch\['repeats'\]\[2\] must be an integer, got 1\.5",
           repeats=[1, 1, 1.5])
_arch_case('expansions True', r"arch\['expansions'\]\[0\] must be an integer, got True",
           expansions=[True, 2, 2])
_arch_case('strides 2.0', r"arch\['strides'\]\[1\] must be an integer", strides=[1, 2.0, 2])
_arch_case('expansion 0', r"arch\['expansions'\]\[1\] = 0 is impossible: it must be >= 1",
           expansions=[1, 0, 2])
_arch_case('head_dim 0', r"arch\['head_dim'\] = 0 is impossible", head_dim=0)
_arch_case('window_size 0', r"arch\['window_size'\] = 0 is impossible", window_size=0)
_arch_case('stem_width -1', r"arch\['stem_width'\] = -1 is impossible", stem_width=-1)
_arch_case('input_size 0', r"arch\['input_size'\] = 0 is impossible", input_size=0)
_arch_case('head_dim 12.0', r"arch\['head_dim'\] must be an integer", head_dim=12.)
_arch_case('out_indices (2, 1): not increasing',
           r'out_indices \(2, 1\).*increasing without repeats.*out_indices=\(1, 2\)',
           out_indices=(2, 1))
_arch_case('out_indices (1, 1): repeated',
           r'out_indices \(1, 1\).*without repeats.*out_indices=\(1,\)', out_indices=(1, 1))
_arch_case('out_indices (2, -1): the same stage twice',
           r'stages \(2, 2\).*without repeats', out_indices=(2, -1))
_arch_case("out_indices '2'", r'out_indices must be an int or a sequence of ints',
           out_indices='2')
_arch_case('out_indices (1.0,)', r'out_indices must hold integers', out_indices=(1.,))
_arch_case('out_indices 3 (int, out of range)', r'out_indices 3 out of range.*3 stages',
           out_indices=3)
_arch_case('out_indices ()', r'out of range', out_indices=())
_arch_case('drop_path_rate 1.0', r'drop_path_rate=1\.0 out of range.*\[0, 1\)',
           drop_path_rate=1.)
_arch_case('drop_path_rate -0.1', r'drop_path_rate=-0\.1 out of range', drop_path_rate=-.1)
_arch_case("drop_path_rate '0.1'", r"drop_path_rate must be a number in \[0, 1\), got '0\.1'",
           drop_path_rate='0.1')
_arch_case('in_channels 0', r'in_channels must be a positive integer', in_channels=0)
_arch_case('frozen_stages 5', r'frozen_stages=5 out of range', frozen_stages=5)


@case('arch: unknown preset b9')
def _(tmp):
    return raises(KeyError, UniNet, 'b9'), r"unknown arch preset 'b9'.*valid presets"


@case('dataset: MNISTDigits(indices=-5)')
def _(tmp):
    from uninet_mm.datasets.digits import SklearnDigits
    return raises(ValueError, SklearnDigits, split='train', indices=-5), \
        r'indices=-5: give a number of samples >= 0'


# ============================================================ 5. checkpoint errors
def _load(path):
    from mmengine.runner import load_checkpoint
    return load_checkpoint(torch.nn.Linear(2, 2), str(path), map_location='cpu')


def _truncated(tmp):
    path = tmp / 'cut.pth'
    torch.save({'state_dict': {'w': torch.randn(64, 64)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path


def _legacy_truncated(tmp):
    path = tmp / 'legacy.pth'
    torch.save({'state_dict': {'w': torch.randn(64, 64)}}, path,
               _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    path.write_bytes(data[:40])
    return path


def _files(tmp):
    empty = tmp / 'empty.pth'
    empty.write_bytes(b'')
    text = tmp / 'text.pth'
    text.write_text("_base_ = ['mmpretrain::_base_/default_runtime.py']\nmodel = dict()\n")
    noise = tmp / 'noise.pth'
    noise.write_bytes(bytes(torch.randint(0, 256, (4096,), generator=torch.Generator()
                                          .manual_seed(1), dtype=torch.uint8).tolist()))
    if noise.read_bytes()[:1] in (b'\x80', b'P'):
        noise.write_bytes(b'\x07' + noise.read_bytes()[1:])
    other_zip = tmp / 'other.zip'
    with zipfile.ZipFile(other_zip, 'w') as z:
        z.writestr('readme.txt', 'hello')
    return dict(empty=(empty, r'is empty \(0 bytes\)'),
                truncated=(_truncated(tmp), r'is truncated or corrupt'),
                legacy_truncated=(_legacy_truncated(tmp), r'is corrupt'),
                text=(text, r"is a text file, not a checkpoint \(it starts with \"_base_"),
                noise=(noise, r'is not a PyTorch checkpoint: neither a zip archive'),
                other_zip=(other_zip, r'zip archive but not a PyTorch checkpoint'))


for _kind in ('empty', 'truncated', 'legacy_truncated', 'text', 'noise', 'other_zip'):
    def _make(kind):
        @case(f'checkpoint: {kind} file (load_checkpoint / load_from / resume)')
        def _(tmp):
            path, pattern = _files(tmp)[kind]
            msg = raises(CheckpointFileError, _load, path)
            assert 'refused' not in msg and 'trust' not in msg
            return msg, pattern

        @case(f'convert_official: {kind} file')
        def _(tmp):
            path, pattern = _files(tmp)[kind]
            msg = raises(SystemExit, tool('convert_official').main,
                         [str(path), str(tmp / 'out.pth'), '--arch', 'b0'])
            assert '--trust-checkpoint' not in msg and not osp.exists(tmp / 'out.pth')
            return msg, pattern
    _make(_kind)


@case('checkpoint: text file as init_cfg Pretrained')
def _(tmp):
    path, pattern = _files(tmp)['text']
    return raises(CheckpointFileError, _pretrained(ARCH, str(path)).init_weights), pattern


@case('checkpoint: malicious pickle (os.system in __reduce__)')
def _(tmp):
    marker = tmp / 'ran'
    path = tmp / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': {'x': _Evil(marker)}}, path)
    msg = raises(UnsafeCheckpointError, _load, path)
    assert not marker.exists()
    return msg, r'refused to load checkpoint.*(posix|nt)\.system.*If you trust the file'


@case('convert_official: malicious pickle')
def _(tmp):
    marker = tmp / 'ran'
    path = tmp / 'evil.pth'
    torch.save({'model': {'stem.0.weight': torch.ones(1)}, 'args': _Evil(marker)}, path)
    msg = raises(SystemExit, tool('convert_official').main,
                 [str(path), str(tmp / 'out.pth'), '--arch', 'b0'])
    assert not marker.exists()
    return msg, r'(posix|nt)\.system.*rerun with --trust-checkpoint'


# ================================================================ 6. command lines, images
@case('train: --cfg-options key without =', ['capsys'])
def _(tmp, capsys):
    return _argparse_error(capsys, tool('train').parse_args,
                           [CLS_CONFIG, '--cfg-options', 'train_cfg.max_epochs']), \
        r"'train_cfg\.max_epochs' is not a key=value pair"


@case('test: --cfg-options key without =', ['capsys'])
def _(tmp, capsys):
    return _argparse_error(capsys, tool('test').parse_args,
                           [CLS_CONFIG, 'x.pth', '--cfg-options', 'a=1', 'model']), \
        r"'model' is not a key=value pair"


@case('image_demo: a file that is no image')
def _(tmp):
    path = tmp / 'notes.jpg'
    path.write_text('not an image')
    return raises(UserInputError, tool('image_demo').run, str(path), DET_CONFIG, 'x.pth',
                  str(tmp / 'o.png')), r"notes\.jpg' is not an image"


@case('image_demo: output name without image extension', ['image'])
def _(tmp, image):
    return raises(UserInputError, tool('image_demo').run, image, DET_CONFIG, 'x.pth',
                  str(tmp / 'result')), r"--out-file '.*result' has no image extension"


@case('image_demo: empty image list')
def _(tmp):
    return raises(UserInputError, tool('image_demo').run, ',', DET_CONFIG, 'x.pth',
                  str(tmp / 'o.png')), r'no image given'


@case('image_demo: image that does not exist')
def _(tmp):
    return raises(UserInputError, tool('image_demo').run, str(tmp / 'gone.png'), DET_CONFIG,
                  'x.pth', str(tmp / 'o.png')), r"gone\.png' does not exist"


@case('get_flops: --all-presets --presets b9', ['capsys'])
def _(tmp, capsys):
    return _argparse_error(capsys, tool('get_flops').parse_args,
                           ['--all-presets', '--presets', 'b0', 'b9']), \
        r"unknown preset\(s\) \['b9'\]"


@case('get_flops: --shape 0', ['capsys'])
def _(tmp, capsys):
    return _argparse_error(capsys, tool('get_flops').parse_args,
                           ['--arch', 'b0', '--shape', '0']), r'--shape 0: sizes must be >= 1'


@case('get_flops: --shape 224 -1', ['capsys'])
def _(tmp, capsys):
    return _argparse_error(capsys, tool('get_flops').parse_args,
                           ['--arch', 'b0', '--shape', '224', '-1']), r'sizes must be >= 1'


@case('get_flops: --presets without --all-presets', ['capsys'])
def _(tmp, capsys):
    return _argparse_error(capsys, tool('get_flops').parse_args,
                           ['--arch', 'b0', '--presets', 'b1']), r'pass --all-presets too'


# ========================================================= behaviour that replaced an error
def test_catalogue_size():
    assert len(CASES) >= 40


def test_pretrained_strict_false_loads_the_matching_part(tmp_path):
    wide = net(dict(ARCH, widths=[16, 48, 48]))
    path = str(tmp_path / 'pre.pth')
    torch.save({'state_dict': wide.state_dict()}, path)
    model = _pretrained(ARCH, path, strict=False)
    model.init_weights()
    # the stem and stage 0 have the same shapes in both archs: they are loaded
    for k, v in model.state_dict().items():
        if k.startswith(('stem.', 'stages.0.')) and v.is_floating_point():
            assert torch.equal(v, wide.state_dict()[k]), k


def test_pretrained_exact_checkpoint_still_loads(tmp_path):
    src = net(ARCH)
    for p in src.parameters():
        p.data.normal_()
    path = str(tmp_path / 'pre.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in src.state_dict().items()}}, path)
    model = _pretrained(ARCH, path)
    model.init_weights()
    for k, v in model.state_dict().items():
        assert torch.equal(v, src.state_dict()[k]), k


def test_out_indices_int_form():
    model = UniNet(ARCH, out_indices=2).eval()
    assert model.out_indices == (2,) and model.out_channels == [32]
    outs = model(torch.randn(1, 3, 32, 32))
    assert len(outs) == 1 and outs[0].shape[1] == 32


@pytest.mark.parametrize('deploy', [False, True], ids=['plain', 'deployed'])
def test_empty_batch_gives_empty_outputs(deploy, small_arch):
    model = UniNet(small_arch, out_indices=range(6)).eval()
    if deploy:
        model.switch_to_deploy()
    with torch.no_grad():
        ref = model(torch.randn(1, 3, 48, 40))
        outs = model(torch.randn(0, 3, 48, 40))
    assert len(outs) == len(ref) == 6
    for o, r in zip(outs, ref):
        assert o.shape == (0,) + tuple(r.shape[1:])


def test_train_records_the_model_in_checkpoints(trained):
    meta = torch.load(osp.join(trained, 'epoch_1.pth'), weights_only=True)['meta']
    rec = meta['uninet']
    assert rec['config'] == 'uninet_mnist_demo.py' and rec['model'] == 'ImageClassifier'
    assert rec['backbones'][0]['module'] == 'backbone'
    assert rec['backbones'][0]['arch']['widths'] == [16, 24, 32, 64, 64, 128]


def test_test_py_accepts_its_own_checkpoint(trained, tmp_path):
    metrics = tool('test').main([CLS_CONFIG, osp.join(trained, 'epoch_1.pth'), '--work-dir',
                                 str(tmp_path), '--cfg-options', *cls_options()])
    assert 0 <= metrics['accuracy/top1'] <= 100


def test_train_resume_and_overwrite_are_allowed(trained, tmp_path):
    work = _copy_work(trained, tmp_path)
    runner = tool('train').main([CLS_CONFIG, '--work-dir', work, '--resume', '--no-validate',
                                 '--cfg-options', *cls_options(epochs=2)])
    assert runner.epoch == 2 and osp.isfile(osp.join(work, 'epoch_2.pth'))


@pytest.mark.parametrize('name,n', [
    pytest.param('MNISTDigits', 64, marks=pytest.mark.slow), ('SklearnDigits', 64),
    ('SklearnDigits', 7)])
def test_digits_int_indices_are_class_balanced(name, n):
    """MNISTDigits(indices=N): every class present, counts differ by at most one (the data is
    sorted by class: MMEngine's first N would be all zeros)."""
    from collections import Counter

    from uninet_mm.datasets import digits
    ds = getattr(digits, name)(split='train', indices=n)
    counts = Counter(ds.get_data_info(i)['gt_label'] for i in range(len(ds)))
    assert len(ds) == n
    assert len(counts) == min(n, 10) and max(counts.values()) - min(counts.values()) <= 1


@pytest.mark.slow
def test_b3_weights_into_b1_backbone_refused(tmp_path):
    """The issue's case: B3 weights into a B1 backbone loaded 76 of 568 tensors with warnings."""
    path = str(tmp_path / 'b3.pth')
    torch.save({'state_dict': UniNet('b3').state_dict()}, path)
    model = UniNet('b1', init_cfg=dict(type='Pretrained', checkpoint=path))
    n_own = len(model.state_dict())
    with pytest.raises(ValueError) as e:
        model.init_weights()
    assert re.search(rf'fills \d+ of the {n_own} backbone tensors.*another UniNet arch',
                     str(e.value))
