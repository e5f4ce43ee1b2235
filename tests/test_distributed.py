"""Distributed training on CPU processes (gloo) through MMEngine's Runner and DDP wrapper.

- CPUSyncBatchNorm against the reference: one plain BatchNorm over the concatenated global batch
  in one process (forward, running statistics, input and weight gradients);
- one training step of 2 processes x batch 1 (torchrun, the real ``tools/dist_train.sh``) equals
  1 process x batch 2 on the same images: loss and every gradient, for a UniNet classifier with
  every GOP and DSM and ``sync_bn='torch'`` (within 1e-5 in float64; in float32 as close to the
  float64 step as the single process's own float32 step); two iterations under DDP with
  ``find_unused_parameters=False`` (DDP fails in the second forward if a parameter got no
  gradient in the first); the demo Mask R-CNN;
- checkpoints written by rank 0 only, loaded by a single process and by ``tools/dist_test.sh``
  with the same accuracy, resumed in DDP after one worker was killed;
- two "nodes" (two torchrun launches, ``NNODES=2``) and ``tools/slurm_train.sh`` with stub
  ``srun``/``scontrol``.
The subprocess runs record what each rank saw with ``tests/dist_probe.py`` (a test-only hook).
"""
import importlib.util
import os
import os.path as osp
import re
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TESTS = osp.join(REPO, 'tests')
sys.path.insert(0, TESTS)
from conftest import SMALL_ARCH  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def rel_err(a, b):
    """||a - b|| / ||b|| (0 when both are zero)."""
    a, b = a.double(), b.double()
    den = b.norm()
    num = (a - b).norm()
    return 0.0 if num == 0 else float(num / den) if den > 0 else float('inf')


# ----------------------------------------------------------------------------- CPUSyncBatchNorm

def _syncbn_worker(rank, world, port, cases, out):
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=world)
    # the module file alone (it needs torch only): the spawned processes skip importing
    # uninet_mm, mmdet, mmseg and mmpretrain
    spec = importlib.util.spec_from_file_location(
        '_sync_bn', osp.join(REPO, 'uninet_mm', 'models', 'sync_bn.py'))
    sync_bn = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync_bn)
    CPUSyncBatchNorm = sync_bn.CPUSyncBatchNorm
    results = []
    for case in cases:
        x = case['x'][case['splits'][rank]:case['splits'][rank + 1]].clone().requires_grad_()
        r = case['r'][case['splits'][rank]:case['splits'][rank + 1]]
        bn = CPUSyncBatchNorm(x.shape[1], momentum=case['momentum'], affine=case['affine'],
                              dtype=x.dtype)
        y = _train_steps(bn, x, r, case)  # this rank's share of the global loss sum(y * r)
        params = {n: p.grad.clone() for n, p in bn.named_parameters()}
        for g in params.values():  # DDP would average; the sum over ranks is the total
            dist.all_reduce(g)
        results.append(dict(y=y.detach(), dx=x.grad, params=params,
                            running_mean=bn.running_mean.clone(),
                            running_var=bn.running_var.clone(),
                            tracked=int(bn.num_batches_tracked)))
    torch.save(results, f'{out}/rank{rank}.pth')
    dist.destroy_process_group()


def _train_steps(bn, x, r, case):
    """The case's affine parameters into ``bn``, then ``case['steps']`` forward/backward
    passes of the loss ``sum(bn(x) * r)``; returns the last output."""
    if case['affine']:
        with torch.no_grad():
            bn.weight.copy_(case['weight'])
            bn.bias.copy_(case['bias'])
    for _ in range(case['steps']):
        x.grad = None
        for p in bn.parameters():
            p.grad = None
        y = bn(x)
        (y * r).sum().backward()
    return y


def _syncbn_cases():
    g = torch.Generator().manual_seed(0)
    cases = []
    # (shape, splits of the batch between the 2 ranks, momentum, affine, steps, dtype)
    for shape, splits, momentum, affine, steps, dtype in [
            ((4, 3, 5, 6), (0, 2, 4), 0.1, True, 1, torch.float32),
            ((4, 3, 5, 6), (0, 3, 4), 0.1, True, 2, torch.float32),  # unequal local batches
            ((6, 5), (0, 2, 6), None, True, 3, torch.float32),  # 1d input, cumulative average
            ((2, 4, 7), (0, 1, 2), 0.3, False, 1, torch.float32),  # no affine, batch 1 per rank
            ((4, 3, 5, 6), (0, 2, 4), 0.1, True, 2, torch.float64)]:  # float64 (no aliasing)
        x = (torch.randn(shape, generator=g) * 3 + 1.5).to(dtype)
        cases.append(dict(x=x, r=torch.randn(shape, generator=g).to(dtype), splits=splits,
                          momentum=momentum, affine=affine, steps=steps,
                          weight=(torch.rand(shape[1], generator=g) + 0.5).to(dtype),
                          bias=torch.randn(shape[1], generator=g).to(dtype)))
    return cases


def _reference(case):
    """Plain BatchNorm of the concatenated global batch in one process."""
    x = case['x'].clone().requires_grad_()
    kind = nn.BatchNorm2d if x.dim() == 4 else nn.BatchNorm1d
    bn = kind(x.shape[1], momentum=case['momentum'], affine=case['affine'], dtype=x.dtype)
    y = _train_steps(bn, x, case['r'], case)
    return dict(y=y.detach(), dx=x.grad, params={n: p.grad for n, p in bn.named_parameters()},
                running_mean=bn.running_mean, running_var=bn.running_var,
                tracked=int(bn.num_batches_tracked))


@pytest.mark.slow  # two spawned processes: ~10-60 s with the load of the machine
def test_cpu_sync_bn_matches_batchnorm_of_global_batch(tmp_path):
    import torch.multiprocessing as mp
    cases = _syncbn_cases()
    mp.spawn(_syncbn_worker, args=(2, free_port(), cases, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f'rank{r}.pth', weights_only=True) for r in range(2)]
    worst = {}
    for i, case in enumerate(cases):
        ref = _reference(case)
        y = torch.cat([ranks[r][i]['y'] for r in range(2)])
        dx = torch.cat([ranks[r][i]['dx'] for r in range(2)])
        errs = {'y': rel_err(y, ref['y']), 'dx': rel_err(dx, ref['dx'])}
        for key in ('running_mean', 'running_var'):
            for r in range(2):
                errs[f'{key}{r}'] = rel_err(ranks[r][i][key], ref[key])
        for name, grad in ref['params'].items():
            for r in range(2):
                errs[f'd{name}{r}'] = rel_err(ranks[r][i]['params'][name], grad)
        assert all(ranks[r][i]['tracked'] == ref['tracked'] for r in range(2))
        limit = 1e-5 if case['x'].dtype == torch.float32 else 1e-10
        assert max(errs.values()) < limit, (i, errs)
        worst[case['x'].dtype] = max(worst.get(case['x'].dtype, 0.), max(errs.values()))
    print(f'CPUSyncBatchNorm vs BatchNorm of the global batch: max relative error {worst}')


def test_cpu_sync_bn_without_process_group_is_batchnorm():
    from uninet_mm.models.sync_bn import CPUSyncBatchNorm
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 5, 5, generator=g)
    ref, ours = nn.BatchNorm2d(4), CPUSyncBatchNorm(4)
    ours.load_state_dict(ref.state_dict())
    assert torch.allclose(ours(x), ref(x))
    assert torch.allclose(ours.running_var, ref.running_var)
    ours.eval(), ref.eval()
    assert torch.allclose(ours(x), ref(x))


def test_convert_replaces_torch_sync_bn_keeping_parameters_and_state_dict():
    from uninet_mm.models.sync_bn import CPUSyncBatchNorm, convert_to_cpu_sync_bn
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm1d(2)))
    keys = list(model.state_dict())
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    weight = synced[1].weight
    out = convert_to_cpu_sync_bn(synced)
    assert isinstance(out[1], CPUSyncBatchNorm) and isinstance(out[2][0], CPUSyncBatchNorm)
    assert out[1].weight is weight
    assert list(out.state_dict()) == keys
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in out.modules())
    # plain BatchNorms (no sync_bn asked) are left alone
    assert isinstance(convert_to_cpu_sync_bn(nn.BatchNorm2d(2)), nn.BatchNorm2d)


def test_prepare_cpu_distributed_leaves_single_process_and_rejects_unknown_wrappers(monkeypatch):
    from mmengine.config import Config

    from uninet_mm.engine import prepare_cpu_distributed
    cfg = Config(dict(launcher='none', env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    assert prepare_cpu_distributed(cfg).env_cfg.dist_cfg.backend == 'nccl'
    assert 'model_wrapper_cfg' not in cfg
    monkeypatch.setattr(torch.distributed, 'is_initialized', lambda: True)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = Config(dict(launcher='pytorch', find_unused_parameters=True,
                      env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    cfg = prepare_cpu_distributed(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg == dict(type='CPUDistributedDataParallel',
                                         broadcast_buffers=False, find_unused_parameters=True)
    cfg = Config(dict(launcher='pytorch',
                      model_wrapper_cfg=dict(type='MMFullyShardedDataParallel')))
    with pytest.raises(RuntimeError, match='cannot run on CPU'):
        prepare_cpu_distributed(cfg)


# ---------------------------------------------------------------- real runs: tools/*.sh, torchrun

def _env(**extra):
    env = dict(os.environ)
    env.update(PYTHONPATH=os.pathsep.join([REPO, TESTS, env.get('PYTHONPATH', '')]),
               PYTHON=sys.executable, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='',
               PYTHONWARNINGS='ignore')
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _run(cmd, env, timeout=600, check=True):
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{" ".join(map(str, cmd))} -> {proc.returncode}\n'
                             f'{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc


def _cls_config(tmp, name, batch, probe, epochs=1, n_train=4, sync_bn=True, **probe_kw):
    """The MNIST demo recipe with SMALL_ARCH (every GOP and DSM) at 64x64 and a linear head, no
    augmentation/dropout, a fixed order of ``n_train`` training images. (At 32x32 the last stage
    is 1x1 and the demo head's BatchNorm1d sees 2 values per channel: BatchNorm of 2 values is
    ill-conditioned, its float32 gradients are rounding noise, so nothing could be compared.)"""
    arch = dict(SMALL_ARCH, input_size=64)
    path = osp.join(tmp, f'{name}.py')
    with open(path, 'w') as f:
        f.write(textwrap.dedent(f"""\
            _base_ = [{osp.join(REPO, 'configs/cls/uninet_mnist_demo.py')!r}]
            custom_imports = dict(imports=['uninet_mm', 'dist_probe'], allow_failed_imports=False)
            model = dict(backbone=dict(arch={arch!r}), neck=dict(type='GlobalAveragePooling'),
                         head=dict(_delete_=True, type='LinearClsHead', num_classes=10,
                                   in_channels=64, loss=dict(type='CrossEntropyLoss')))
            {"sync_bn = 'torch'" if sync_bn else ''}
            train_dataloader = dict(
                batch_size={batch},
                dataset=dict(indices={n_train}, image_size=64, pipeline=[dict(type='PackInputs')]),
                sampler=dict(type='DefaultSampler', shuffle=False))
            val_dataloader = dict(batch_size=4, dataset=dict(indices=16, image_size=64))
            test_dataloader = val_dataloader
            max_epochs = {epochs}
            train_cfg = dict(max_epochs={epochs}, val_interval=100)
            default_hooks = dict(logger=dict(interval=1),
                                 checkpoint=dict(interval=1, max_keep_ckpts=5))
            custom_hooks = [dict(type='DistProbeHook', out_dir={probe!r}, **{probe_kw!r})]
            """))
    return path


def _dist_train(cfg, work_dir, n, port, *flags, check=True, timeout=600, **env):
    return _run(['bash', 'tools/dist_train.sh', cfg, str(n), '--work-dir', work_dir,
                 '--no-validate', *flags], _env(PORT=port, **env), timeout=timeout, check=check)


def _train(cfg, work_dir, *flags, **env):
    return _run([sys.executable, 'tools/train.py', cfg, '--work-dir', work_dir, '--no-validate',
                 *flags], _env(**env))


def _load(path):
    import uninet_mm  # noqa: F401  (MMEngine checkpoint types under weights_only)
    return torch.load(path, map_location='cpu', weights_only=True)


def _compare_step(single, ddp, it=0, ranks=2):
    """Max relative differences (loss, gradients, running stats) of iteration ``it``."""
    ref_g = _load(osp.join(single, f'grads_iter{it}_rank0.pth'))
    ref_l = _load(osp.join(single, f'loss_iter{it}_rank0.pth'))
    g = [_load(osp.join(ddp, f'grads_iter{it}_rank{r}.pth')) for r in range(ranks)]
    losses = [_load(osp.join(ddp, f'loss_iter{it}_rank{r}.pth')) for r in range(ranks)]
    assert not ref_g['missing'] and not any(x['missing'] for x in g)
    assert set(g[0]['grads']) == set(ref_g['grads'])
    grad_err, zero_g = _errors([x['grads'] for x in g], ref_g['grads'])
    stats_err, zero_s = _errors([x['stats'] for x in losses], ref_l['stats'])
    loss = sum(x['loss'] for x in losses) / ranks
    return dict(loss=abs(loss - ref_l['loss']) / abs(ref_l['loss']), grads=grad_err,
                stats=stats_err, zero=zero_g + zero_s,
                batches=([x['batch'] for x in losses], ref_l['batch']))


def _errors(runs, ref):
    """Per tensor, the max over ``runs`` of ||run - ref|| / ||ref||. A tensor that is ~0 in the
    reference (norm under 1e-6 of the norm of all of them: the gradient of a conv bias right
    before a training-mode BatchNorm is exactly zero, its float32 value rounding noise) is
    measured against the norm of all tensors instead; their names are returned too."""
    total = sum(float(t.double().norm()) ** 2 for t in ref.values()) ** 0.5
    errs, zero = {}, []
    for name, r in ref.items():
        den = float(r.double().norm())
        if den < 1e-6 * total:
            den = total
            zero.append(name)
        errs[name] = max(float((x[name].double() - r.double()).norm()) / den for x in runs)
    return errs, zero


@pytest.mark.slow
def test_ddp_classifier_step_equals_single_process_and_checkpoints(tmp_path):
    """2 x batch 1 vs 1 x batch 2 from the same parameters, in float64 and in float32.

    float64: the loss, every gradient and every running statistic within 1e-5 relative
    (||ddp - single|| / ||single|| per tensor). float32: the LG/G-DSM query paths are so
    ill-conditioned (queries -> LayerNorm -> attention) that the single process's own float32
    step is up to ~4e-4 away from its float64 step there; the DDP float32 gradients must be as
    close to the float64 step as that (within 4x, or within 1e-5).
    """
    tmp, init = str(tmp_path), f'{tmp_path}/init.pth'
    procs = {}
    for dtype in ('float32', 'float64'):
        single = _cls_config(tmp, f'single_{dtype}', batch=2, probe=f'{tmp}/single_{dtype}',
                             randomize_init=True, init_file=init)
        ddp = _cls_config(tmp, f'ddp_{dtype}', batch=1, probe=f'{tmp}/ddp_{dtype}',
                          randomize_init=True, init_file=init)
        _train(single, f'{tmp}/w_single_{dtype}', DIST_PROBE_DTYPE=dtype)
        procs[dtype] = _dist_train(ddp, f'{tmp}/w_ddp_{dtype}', 2, free_port(),
                                   DIST_PROBE_DTYPE=dtype)
    ddp_cfg = osp.join(tmp, 'ddp_float32.py')
    env = _load(f'{tmp}/ddp_float32/env_rank0.pth')
    assert env['world'] == 2 and env['wrapper'] == 'CPUDistributedDataParallel'
    assert env['device_ids'] is None and not env['find_unused']
    assert 'CPUSyncBatchNorm' in env['norms'] and 'SyncBatchNorm' not in env['norms']
    assert 'CPUSyncBatchNorm' not in _load(f'{tmp}/single_float32/env_rank0.pth')['norms']

    # iteration 0: same 2 images (rank 0: image 0, rank 1: image 1)
    res = {dtype: _compare_step(f'{tmp}/single_{dtype}', f'{tmp}/ddp_{dtype}', it=0)
           for dtype in procs}
    for dtype, r in res.items():
        assert r['batches'][0] == [[b] for b in r['batches'][1]], r['batches']
        worst = max(r['grads'], key=r['grads'].get)
        errs = sorted(r['grads'].values())
        print(f"{dtype}: 2x1 vs 1x2, {len(errs)} gradients: max rel {errs[-1]:.2e} ({worst}), "
              f"median {errs[len(errs) // 2]:.2e}, over 1e-5: {sum(e > 1e-5 for e in errs)}; "
              f"loss rel {r['loss']:.2e}; running stats max rel {max(r['stats'].values()):.2e}")
        assert r['loss'] < 1e-5 and max(r['stats'].values()) < 1e-5, (dtype, r['loss'])
    assert max(res['float64']['grads'].values()) < 1e-5, res['float64']['grads']

    grads = {f'{kind}_{dtype}': _load(f'{tmp}/{kind}_{dtype}/grads_iter0_rank0.pth')['grads']
             for kind in ('single', 'ddp') for dtype in procs}
    exact = grads['single_float64']
    own, _ = _errors([grads['single_float32']], exact)
    ours, _ = _errors([grads['ddp_float32']], exact)
    bad = {n: (ours[n], own[n]) for n in exact if ours[n] > max(1e-5, 4 * own[n])}
    top = sorted(own, key=own.get)[-3:]
    print('float32 vs the float64 step (single, ddp): ' +
          ', '.join(f'{n} {own[n]:.2e} {ours[n]:.2e}' for n in top))
    assert not bad, bad
    for dtype, proc in procs.items():
        # iteration 1 ran under DDP without find_unused_parameters: every parameter had a grad
        assert osp.exists(f'{tmp}/ddp_{dtype}/grads_iter1_rank1.pth')
        assert 'Expected to have finished reduction' not in proc.stderr

    # checkpoints: written by rank 0 only, without DDP's 'module.' prefix
    assert open(f'{tmp}/ddp_float32/saved_by_rank0.txt').read().split() == ['epoch=1',
                                                                            'iter=2']
    assert not osp.exists(f'{tmp}/ddp_float32/saved_by_rank1.txt')
    ckpt = f'{tmp}/w_ddp_float32/epoch_1.pth'
    state = _load(ckpt)['state_dict']
    assert not any(k.startswith('module.') for k in state)

    # the DDP checkpoint in one process (tools/test.py) and in 2 (tools/dist_test.sh): same top-1
    one = _run([sys.executable, 'tools/test.py', ddp_cfg, ckpt, '--work-dir', f'{tmp}/t1'],
               _env())
    two = _run(['bash', 'tools/dist_test.sh', ddp_cfg, ckpt, '2', '--work-dir', f'{tmp}/t2'],
               _env(PORT=free_port()))
    acc = [re.findall(r'accuracy/top1: ([\d.]+)', p.stdout + p.stderr) for p in (one, two)]
    assert acc[0] and acc[0] == acc[1], acc

    # resumed in DDP: epoch 2 starts from the DDP checkpoint of epoch 1
    ddp3 = _cls_config(tmp, 'resume', batch=1, probe=f'{tmp}/probe_resume', epochs=2)
    proc = _dist_train(ddp3, f'{tmp}/w_ddp_float32', 2, free_port(), '--resume')
    assert 'resumed epoch: 1, iter: 2' in proc.stdout + proc.stderr
    assert _load(f'{tmp}/w_ddp_float32/epoch_2.pth')['meta']['iter'] == 4


@pytest.mark.slow
def test_resume_after_killing_one_worker(tmp_path):
    tmp = str(tmp_path)
    cfg = _cls_config(tmp, 'ddp', batch=1, probe=f'{tmp}/probe', epochs=3, sync_bn=False,
                      kill_rank=1, kill_iter=4)
    proc = _dist_train(cfg, f'{tmp}/w', 2, free_port(), check=False, timeout=300)
    assert proc.returncode != 0  # torchrun stops the job when a worker dies
    assert osp.exists(f'{tmp}/w/epoch_2.pth') and not osp.exists(f'{tmp}/w/epoch_3.pth')
    cfg = _cls_config(tmp, 'ddp', batch=1, probe=f'{tmp}/probe2', epochs=3, sync_bn=False)
    proc = _dist_train(cfg, f'{tmp}/w', 2, free_port(), '--resume')
    assert 'resumed epoch: 2, iter: 4' in proc.stdout + proc.stderr
    meta = _load(f'{tmp}/w/epoch_3.pth')['meta']
    assert (meta['epoch'], meta['iter']) == (3, 6)


@pytest.mark.slow
def test_two_nodes_train_together(tmp_path):
    tmp, port = str(tmp_path), free_port()
    cfg = _cls_config(tmp, 'nodes', batch=1, probe=f'{tmp}/probe')
    procs = [subprocess.Popen(['bash', 'tools/dist_train.sh', cfg, '1', '--work-dir', f'{tmp}/w',
                               '--no-validate'], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              env=_env(PORT=port, NNODES=2, NODE_RANK=rank,
                                       MASTER_ADDR='127.0.0.1'))
             for rank in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs[0][-3000:] + outs[1][-3000:]
    for r in range(2):
        assert _load(f'{tmp}/probe/env_rank{r}.pth')['world'] == 2
    g = [_load(f'{tmp}/probe/grads_iter0_rank{r}.pth')['grads'] for r in range(2)]
    assert all(torch.equal(g[0][n], g[1][n]) for n in g[0])  # all-reduced across the nodes
    assert not osp.exists(f'{tmp}/probe/saved_by_rank1.txt')


SRUN = r'''#!/usr/bin/env bash
# stub srun: start --ntasks copies of the command here, with the SLURM_* variables of a job step
ntasks=1; per_node=1
while [ $# -gt 0 ]; do
  case "$1" in
    --ntasks=*) ntasks=${1#*=}; shift ;;
    --ntasks-per-node=*) per_node=${1#*=}; shift ;;
    -p|-J|-n|-N) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
echo "$@" > "$STUB_LOG"
pids=()
for ((i = 0; i < ntasks; i++)); do
  SLURM_PROCID=$i SLURM_LOCALID=$((i % per_node)) SLURM_NODEID=$((i / per_node)) \
  SLURM_NTASKS=$ntasks SLURM_NPROCS=$ntasks SLURM_NNODES=$(((ntasks + per_node - 1) / per_node)) \
  SLURM_NODELIST=stubnode[0-1] SLURM_JOB_ID=4242 SLURM_STEP_ID=0 "$@" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
exit $rc
'''
SCONTROL = r'''#!/usr/bin/env bash
# stub scontrol: `scontrol show hostname LIST` -> the hosts, one per line
[ "$1 $2" = "show hostname" ] && printf 'localhost\nlocalhost\n' && exit 0
exit 1
'''


@pytest.mark.slow
def test_slurm_train_with_stub_srun(tmp_path):
    tmp = str(tmp_path)
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name, text in (('srun', SRUN), ('scontrol', SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    cfg = _cls_config(tmp, 'slurm', batch=1, probe=f'{tmp}/probe')
    env = _env(GPUS=2, GPUS_PER_NODE=2, GRES='', MASTER_PORT=free_port(),
               STUB_LOG=f'{tmp}/srun.log', PATH=f'{bin_dir}:{os.environ["PATH"]}')
    _run(['bash', 'tools/slurm_train.sh', 'cpu', 'uninet', cfg, f'{tmp}/w', '--no-validate'], env)
    assert '--launcher=slurm' in open(f'{tmp}/srun.log').read()
    for r in range(2):
        assert _load(f'{tmp}/probe/env_rank{r}.pth')['world'] == 2
    assert osp.exists(f'{tmp}/w/epoch_1.pth')


def _det_config(tmp, name, batch, probe, data_root):
    path = osp.join(tmp, f'{name}.py')
    with open(path, 'w') as f:
        f.write(textwrap.dedent(f"""\
            _base_ = [{osp.join(REPO, 'configs/mmdet/mask_rcnn_uninet_demo.py')!r}]
            custom_imports = dict(imports=['uninet_mm', 'dist_probe'], allow_failed_imports=False)
            sync_bn = 'torch'
            train_dataloader = dict(
                batch_size={batch}, num_workers=0, persistent_workers=False,
                dataset=dict(data_root={data_root!r}, indices=2, pipeline=[
                    dict(type='LoadImageFromFile'),
                    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                    dict(type='Resize', scale=(128, 128), keep_ratio=True),
                    dict(type='PackDetInputs')]),
                sampler=dict(type='DefaultSampler', shuffle=False))
            train_cfg = dict(max_epochs=1, val_interval=100)
            optim_wrapper = dict(clip_grad=None)
            default_hooks = dict(checkpoint=dict(interval=100))
            custom_hooks = [dict(type='DistProbeHook', out_dir={probe!r}, dump_iters=1)]
            """))
    return path


@pytest.mark.slow
def test_ddp_mask_rcnn_step_close_to_single_process(tmp_path):
    tmp = str(tmp_path)
    from uninet_mm.datasets import demo_shapes
    demo_shapes.ensure_demo_data(f'{tmp}/data', seed=0, num_train=2, num_val=1,
                                 seg_num_train=1, seg_num_val=1)
    root = f'{tmp}/data/coco/'
    _train(_det_config(tmp, 'single', 2, f'{tmp}/p1', root), f'{tmp}/w1')
    _dist_train(_det_config(tmp, 'ddp', 1, f'{tmp}/p2', root), f'{tmp}/w2', 2, free_port())
    res = _compare_step(f'{tmp}/p1', f'{tmp}/p2', it=0)
    backbone = {n: e for n, e in res['grads'].items() if n.startswith('backbone.')}
    print(f"Mask R-CNN 2x1 vs 1x2: loss rel {res['loss']:.2e}; gradients max rel "
          f"{max(res['grads'].values()):.2e}, backbone median "
          f"{sorted(backbone.values())[len(backbone) // 2]:.2e}")
    # the RPN/RoI samplers draw from each process's own RNG and some losses are averaged over
    # the positives of the local batch: close, not equal (see docs)
    assert res['loss'] < 0.05
