"""The inference form as a structural reparameterisation (issue 13): training modules never run
deploy code; ``switch_to_deploy()`` leaves only deployed modules; ``UniNet(deploy=True)`` builds
that structure, into which a deployed checkpoint loads strictly with the plain model's outputs;
``tools/model_converters/reparameterize_model.py`` writes such a checkpoint and never
overwrites without ``--force``; the test-time hook is a registered part of the package."""
import copy
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from uninet_mm.models import UniNet, deploy, deploy_ops
from uninet_mm.models.dsms import DSMBase, LocalGlobalDSM
from uninet_mm.models.gops import FFN, SAGOP, ConvGOP, GlobalAttention, TokenGOP, WindowTokenMLP
from uninet_mm.models.layers import DropPath, SqueezeExcite
from uninet_mm.models.uninet import UniNetStage

pytestmark = pytest.mark.usefixtures('one_thread')

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(ROOT, 'tools', 'model_converters', 'reparameterize_model.py')
CLS_CONFIG = osp.join(ROOT, 'configs', 'cls', 'uninet_mnist_demo.py')
ALL = (0, 1, 2, 3, 4, 5)


def trained_like(module, seed=0):
    """Non-trivial BN statistics, layer scales and biases, as after training; eval mode."""
    g = torch.Generator().manual_seed(seed)

    def u(t, lo, hi):
        t.data.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)

    for m in module.modules():
        if isinstance(m, _BatchNorm):
            u(m.running_mean, -1, 1), u(m.running_var, 0.5, 2)
            u(m.weight, 0.5, 1.5), u(m.bias, -0.5, 0.5)
        if isinstance(m, TokenGOP):
            u(m.gamma1, 0.2, 0.6), u(m.gamma2, 0.2, 0.6)
        if isinstance(m, nn.Linear) and m.bias is not None:
            u(m.bias, -0.2, 0.2)
    return module.eval()


def arch_of(name, small_arch):
    return small_arch if name == 'small' else name


def assert_same(ref, out, tol=1e-5):
    assert len(ref) == len(out)
    for a, b in zip(ref, out):
        torch.testing.assert_close(b, a, rtol=tol, atol=tol)


def test_training_forward_and_backward_never_touch_deploy_kernels(small_arch, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError('deploy kernel called')

    for name in ('conv2d', 'linear', 'gated_conv1x1', 'attention', 'onednn_attention',
                 'kernel_dtype', 'onednn_applies'):
        monkeypatch.setattr(deploy_ops, name, boom)
    model = UniNet(small_arch, out_indices=ALL, drop_path_rate=0.1).train()
    x = torch.randn(2, 3, 45, 61, requires_grad=True)
    sum(o.square().mean() for o in model(x)).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters())
    with torch.no_grad():  # the plain model's inference takes no deploy kernel either
        model.eval()(x)
    # guard that the patch bites: the deployed form does call the kernels
    with pytest.raises(RuntimeError, match='deploy kernel'), torch.no_grad():
        copy.deepcopy(model).switch_to_deploy()(x)


#: every module class the inference form may contain
DEPLOYED_KINDS = {
    UniNet, UniNetStage, nn.ModuleList, nn.Sequential, nn.Conv2d, nn.Conv1d, nn.LayerNorm,
    nn.MaxPool2d, nn.ReLU, SqueezeExcite, deploy.DeployedStem, deploy.FusedConv2d,
    deploy.FusedLinear, deploy.SEGatedConv2d, deploy.DeployedConvGOP, deploy.DeployedTokenGOP,
    deploy.DeployedGlobalAttention, deploy.DeployedWindowAttention, deploy.DeployedTokenMLP,
    deploy.DeployedLocalDSM, deploy.DeployedLocalGlobalDSM, deploy.DeployedGlobalDSM}


@pytest.mark.parametrize('build', ['switch_to_deploy', 'deploy=True'])
def test_inference_form_holds_only_deployed_modules(small_arch, build):
    if build == 'deploy=True':
        model = UniNet(small_arch, out_indices=ALL, deploy=True)
    else:
        model = trained_like(UniNet(small_arch, out_indices=ALL)).switch_to_deploy()
    kinds = {type(m) for m in model.modules()}
    training_only = (_BatchNorm, nn.Identity, nn.GELU, nn.Dropout, DropPath, ConvGOP, TokenGOP,
                     DSMBase, GlobalAttention, WindowTokenMLP, FFN)
    assert not [k for k in kinds if issubclass(k, training_only)]
    assert kinds <= DEPLOYED_KINDS, kinds - DEPLOYED_KINDS
    names = [n for n, _ in model.named_parameters()] + [n for n, _ in model.named_buffers()]
    assert not [n for n in names if 'gamma' in n or 'running_' in n]
    # the one layer scale that cannot fold (it scales channels after token mixing) is kept
    n_mlp = sum(isinstance(m, deploy.DeployedTokenMLP) for m in model.modules())
    assert n_mlp == small_arch['repeats'][small_arch['gops'].index('MLP')]
    assert sum(n.endswith('layer_scale') for n in names) == n_mlp
    assert model.deploy
    with torch.no_grad():
        assert all(torch.isfinite(o).all() for o in model(torch.randn(1, 3, 33, 47)))


@pytest.mark.parametrize('arch', ['b0', 'small'])
def test_deployed_checkpoint_round_trips_through_deploy_true(arch, small_arch, tmp_path,
                                                             monkeypatch):
    monkeypatch.setattr(deploy_ops, 'ONEDNN_ATTENTION_MIN', 0)  # every attention on oneDNN
    arch = arch_of(arch, small_arch)
    model = trained_like(UniNet(arch, out_indices=ALL))
    x = torch.randn(2, 3, 67, 101)
    path = str(tmp_path / 'deployed.pth')
    torch.save(copy.deepcopy(model).switch_to_deploy().state_dict(), path)
    fresh = UniNet(arch, out_indices=ALL, deploy=True).eval()
    with torch.no_grad():
        ref, before = model(x), fresh(x)
    result = fresh.load_state_dict(torch.load(path, weights_only=True), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    with torch.no_grad():
        out = fresh(x)
    assert_same(ref, out)
    assert all(o.is_contiguous() for o in out)
    assert not torch.allclose(before[-1], ref[-1], atol=1e-3)  # the checkpoint set the weights
    with pytest.raises(RuntimeError, match='Missing key|Unexpected key'):  # training layout
        UniNet(arch, out_indices=ALL, deploy=True).load_state_dict(model.state_dict())
    with pytest.raises(RuntimeError, match='inference form'):
        fresh.train()


def test_reparameterize_replaces_operators_inside_any_container():
    """The hook's walk (a retrofit holds DSMs and GOPs inside an upstream backbone): every
    operator anywhere is replaced, outputs kept."""
    torch.manual_seed(0)
    host = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.Sequential(
        LocalGlobalDSM(32, 64, stride=2, head_dim=32), SAGOP(64, 64, expansion=2)))
    trained_like(host)
    x = torch.randn(2, 3, 19, 23)
    with torch.no_grad():
        ref = host(x)
        deployed = deploy.reparameterize(copy.deepcopy(host))
        out = deployed(x)
    assert isinstance(deployed[1][0], deploy.DeployedLocalGlobalDSM)
    assert isinstance(deployed[1][1], deploy.DeployedTokenGOP)
    assert type(deployed[0]) is nn.Conv2d
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_inference_form_hook_is_registered():
    from mmdet.registry import HOOKS as DET_HOOKS
    from mmengine.registry import HOOKS

    from uninet_mm.engine import InferenceFormHook
    for registry in (HOOKS, DET_HOOKS):  # a library's runner finds it through its parent
        hook = registry.build(dict(type='InferenceFormHook', deploy=True))
        assert isinstance(hook, InferenceFormHook) and hook.deploy


# ------------------------------------------------------------------ the converter tool
def classifier(cfg_options=None):
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    cfg = Config.fromfile(CLS_CONFIG)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope('mmpretrain')
    return MODELS.build(cfg.model)


def tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location('uninet_tools_reparameterize', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reparameterize_tool_round_trip(tmp_path, capsys):
    """CONFIG CKPT OUT -> a checkpoint that loads strictly into model.backbone.deploy=True
    (as ``--cfg-options model.backbone.deploy=True``) with the trained model's outputs."""
    from mmengine.runner import load_checkpoint
    torch.manual_seed(0)
    model = trained_like(classifier())
    ckpt, out = str(tmp_path / 'epoch_1.pth'), str(tmp_path / 'deploy' / 'deployed.pth')
    torch.save(dict(meta=dict(epoch=1), state_dict=model.state_dict()), ckpt)
    assert tool().main([CLS_CONFIG, ckpt, out]) == out
    assert 'model.backbone.deploy=True' in capsys.readouterr().out
    saved = torch.load(out, weights_only=True)
    assert saved['meta']['deploy'] and saved['meta']['epoch'] == 1
    fresh = classifier({'model.backbone.deploy': True}).eval()
    load_checkpoint(fresh, out, map_location='cpu', strict=True)
    assert fresh.backbone.deploy
    x = torch.randn(2, 3, 67, 101)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x, mode='tensor'), model(x, mode='tensor'),
                                   rtol=1e-5, atol=1e-5)
    # --force overwrites an existing OUT (with the same result)
    assert tool().main([CLS_CONFIG, ckpt, out, '--force']) == out


def test_reparameterize_tool_refuses_to_overwrite(tmp_path):
    ckpt, out = tmp_path / 'epoch_1.pth', tmp_path / 'deployed.pth'
    ckpt.write_bytes(b'trained')
    out.write_bytes(b'earlier result')
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, TOOL, CLS_CONFIG, str(ckpt), str(out)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and 'exists' in lines[0] and '--force' in lines[0], proc.stderr
    assert out.read_bytes() == b'earlier result'
    # never the input, not even with --force
    with pytest.raises(SystemExit, match='is the input checkpoint'):
        tool().main([CLS_CONFIG, str(ckpt), str(ckpt), '--force'])
    assert ckpt.read_bytes() == b'trained'


@pytest.mark.slow
def test_converted_checkpoint_tests_like_the_trained_one(tmp_path):
    """The user path: tools/test.py on the trained checkpoint, then on its conversion with
    ``--cfg-options model.backbone.deploy=True``: the same segmentation metrics."""
    import importlib.util

    from uninet_mm.datasets import demo_shapes as ds
    root = ds.ensure_demo_data(str(tmp_path / 'demo'), seed=5, img_size=96, num_train=2,
                               num_val=2, seg_img_size=64, seg_num_train=2, seg_num_val=2)
    config = osp.join(ROOT, 'configs', 'mmseg', 'upernet_uninet_demo.py')
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = trained_like(MODELS.build(Config.fromfile(config).model))
    ckpt, out = str(tmp_path / 'iter_1.pth'), str(tmp_path / 'deployed.pth')
    torch.save(dict(meta=dict(iter=1), state_dict=model.state_dict()), ckpt)
    tool().main([config, ckpt, out])

    spec = importlib.util.spec_from_file_location('uninet_tools_test_13a',
                                                  osp.join(ROOT, 'tools', 'test.py'))
    test_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_py)
    opts = [f'{loader}.{k}' for loader in ('test_dataloader', 'val_dataloader')
            for k in ('num_workers=0', 'persistent_workers=False', f'dataset.data_root={root}/ade')]
    trained = test_py.main([config, ckpt, '--work-dir', str(tmp_path / 'w1'),
                            '--cfg-options', *opts])
    deployed = test_py.main([config, out, '--work-dir', str(tmp_path / 'w2'), '--cfg-options',
                             'model.backbone.deploy=True', *opts])
    assert {'aAcc', 'mIoU'} <= set(deployed)
    assert abs(deployed['aAcc'] - trained['aAcc']) < 0.1  # same predictions, up to fp ties
    assert abs(deployed['mIoU'] - trained['mIoU']) < 0.1
