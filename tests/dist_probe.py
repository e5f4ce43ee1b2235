"""A test-only MMEngine hook (imported by the configs of tests/test_distributed.py through
``custom_imports``) that records what each rank of a real ``tools/train.py`` run saw.

Files written to ``out_dir`` (``torch.save``, read back with ``weights_only=True``):
- ``env_rank{r}.pth``: world size, wrapper class, find_unused_parameters, BN layer classes;
- ``grads_iter{i}_rank{r}.pth``: every parameter's gradient as the optimizer is about to step
  (after DDP's all-reduce), names without the ``module.`` prefix, and the names with no grad;
- ``loss_iter{i}_rank{r}.pth``: the rank's loss and the BN running statistics after the step;
- ``saved_by_rank{r}.txt``: one line per checkpoint this rank wrote.
``kill_rank`` / ``kill_iter``: that rank SIGKILLs itself after iteration ``kill_iter``.
``randomize_init``: layer scales and all-zero parameters get values in [0.5, 1.5) first.
``init_file``: the parameters the run starts from: written by the first run that names it (after
``randomize_init``), loaded by the others (so float32 and float64 runs start from the same
values: their initialisers draw different numbers from the same seed).
``DIST_PROBE_DTYPE=float64`` in the environment: torch's default dtype is float64 from the import
of this module on (``custom_imports``, before the model is built), so the whole step runs in
float64 (the data preprocessor's float32 images meet its float64 mean/std buffers).
"""
import os
import os.path as osp
import signal

import torch
from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

if os.environ.get('DIST_PROBE_DTYPE', 'float32') != 'float32':
    torch.set_default_dtype(getattr(torch, os.environ['DIST_PROBE_DTYPE']))


@HOOKS.register_module()
class DistProbeHook(Hook):

    priority = 'VERY_LOW'

    def __init__(self, out_dir, dump_iters=2, kill_rank=None, kill_iter=None,
                 randomize_init=False, init_file=None):
        self.init_file = init_file
        self.out_dir = out_dir
        self.randomize_init = randomize_init
        self.dump_iters = dump_iters
        self.kill_rank = kill_rank
        self.kill_iter = kill_iter

    def _path(self, name):
        return osp.join(self.out_dir, name)

    def before_train(self, runner):
        os.makedirs(self.out_dir, exist_ok=True)
        self.rank, self.world = get_dist_info()
        self.runner = runner
        wrapped = runner.model
        self.model = wrapped.module if is_model_wrapper(wrapped) else wrapped
        torch.save(dict(
            world=self.world,
            wrapper=type(wrapped).__name__,
            find_unused=bool(getattr(wrapped, 'find_unused_parameters', False)),
            device_ids=getattr(wrapped, 'device_ids', None),
            norms=sorted({type(m).__name__ for m in self.model.modules()
                          if isinstance(m, torch.nn.modules.batchnorm._NormBase)}),
        ), self._path(f'env_rank{self.rank}.pth'))
        runner.optim_wrapper.optimizer.register_step_pre_hook(self._grab_grads)
        if self.randomize_init:
            # the release init starts every block as its shortcut (zero BN weights, 1e-6 layer
            # scales): the inner gradients would be ~1e-6 of the others. The same values on
            # every rank (one seeded generator, parameters in name order).
            g = torch.Generator().manual_seed(0)
            with torch.no_grad():
                for name, p in sorted(self.model.named_parameters()):
                    if name.endswith(('gamma1', 'gamma2')) or not p.any():
                        p.copy_(torch.empty_like(p).uniform_(0.5, 1.5, generator=g))
        if self.init_file and osp.exists(self.init_file):
            init = torch.load(self.init_file, map_location='cpu', weights_only=True)
            with torch.no_grad():
                for name, p in self.model.named_parameters():
                    p.copy_(init[name])
        elif self.init_file and self.rank == 0:
            torch.save({n: p.detach().clone() for n, p in self.model.named_parameters()},
                       self.init_file)

    def _grab_grads(self, optimizer, args, kwargs):
        it = self.runner.iter
        if it >= self.dump_iters:
            return
        grads, missing = {}, []
        for name, p in self.model.named_parameters():
            if p.grad is None:
                missing.append(name)
            else:
                grads[name] = p.grad.detach().clone()
        torch.save(dict(grads=grads, missing=missing),
                   self._path(f'grads_iter{it}_rank{self.rank}.pth'))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        it = runner.iter  # not yet incremented: the index of the iteration just run
        if it < self.dump_iters:
            stats = {name: b.detach().clone() for name, b in self.model.named_buffers()
                     if 'running_' in name}
            torch.save(dict(loss=float(outputs['loss']), stats=stats,
                            batch=[str(s.get('img_path', s.get('sample_idx')))
                                   for s in _metas(data_batch)]),
                       self._path(f'loss_iter{it}_rank{self.rank}.pth'))
        if self.kill_rank == self.rank and self.kill_iter == it:
            os.kill(os.getpid(), signal.SIGKILL)

    def before_save_checkpoint(self, runner, checkpoint):
        with open(self._path(f'saved_by_rank{self.rank}.txt'), 'a') as f:
            meta = checkpoint['meta']
            f.write(f"epoch={meta.get('epoch')} iter={meta.get('iter')}\n")


def _metas(data_batch):
    samples = data_batch.get('data_samples', []) if isinstance(data_batch, dict) else []
    return [s.metainfo for s in samples]
