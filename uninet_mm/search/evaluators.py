"""Candidate evaluators and the reward.

- :class:`ProxyTrainEvaluator`: trains the candidate for a few epochs through MMEngine's
  ``Runner`` and MMPretrain's ``ImageClassifier`` (``UniNet`` backbone + ``UniNetClsHead``) on
  the dataset of any classification config (default: ``configs/cls/uninet_mnist_demo.py``, the
  embedded MNIST proxy), and reads the real top-1 validation accuracy.
- :class:`ZeroCostEvaluator`: NASWOT (Mellor et al., ICML 2021), the log-determinant of the
  kernel of binary activation codes of one batch, for cheap screening without training.
- :class:`SyntheticEvaluator`: the share of tokens equal to a known best sequence (tests, and
  checking a strategy without training anything).

All of them build a candidate only through ``dict(type='UniNet', arch=arch)`` in the registry,
and count FLOPs with the project's counter (:func:`uninet_mm.utils.flops.count_flops`:
multiply-adds, attention included) at the proxy resolution.

The reward is defined once, in :mod:`uninet_mm.search.reward`.
"""
import contextlib
import copy
import logging
import math
import os
import os.path as osp
import shutil
import time
import uuid

import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from .registry import EVALUATORS, build_from
from .reward import (PAPER_ALPHA, PAPER_TARGET_FLOPS, PAPER_TARGET_RESOLUTION,  # noqa: F401
                     compute_reward, scale_target)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_PROXY_CONFIG = 'configs/cls/uninet_mnist_demo.py'


class CandidateDiverged(RuntimeError):
    """Training of a candidate produced a non-finite loss or accuracy."""


def count_complexity(model, input_shape, forward=None):
    """``(flops, params)`` of ``model`` at ``input_shape`` with the project's counter."""
    from ..utils.flops import count_flops
    flops, params = count_flops(model, tuple(input_shape), forward=forward)
    return int(flops), int(params)


def resolve_path(path):
    """A config path as given, or relative to the repository root."""
    if osp.isfile(path):
        return path
    alt = osp.join(REPO_ROOT, path)
    if osp.isfile(alt):
        return alt
    raise FileNotFoundError(f'config {path!r} not found (also tried {alt})')


@contextlib.contextmanager
def num_threads(n):
    """Intra-op threads of torch inside the block (None: unchanged)."""
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@HOOKS.register_module()
class SearchCandidateHook(Hook):
    """Stops a proxy training at the first non-finite loss (a diverged candidate) and keeps
    the last validation metrics for the evaluator."""

    priority = 'VERY_LOW'

    def __init__(self):
        self.metrics = None

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        loss = (outputs or {}).get('loss')
        if loss is None:
            return
        loss = torch.as_tensor(loss).detach()
        if not torch.isfinite(loss).all():
            raise CandidateDiverged(f'diverged: non-finite training loss {loss.tolist()} at '
                                    f'iteration {runner.iter + 1}')

    def after_val_epoch(self, runner, metrics=None):
        self.metrics = dict(metrics or {})


_RUNNER_KEYS = ('model', 'work_dir', 'train_dataloader', 'val_dataloader', 'train_cfg',
                'val_cfg', 'optim_wrapper', 'param_scheduler', 'val_evaluator',
                'default_hooks', 'custom_hooks', 'launcher', 'env_cfg', 'log_processor',
                'log_level', 'visualizer', 'default_scope', 'randomness', 'experiment_name',
                'auto_scale_lr')


def make_runner(cfg, datasets=None):
    """``Runner(**cfg)`` as ``Runner.from_cfg`` does, except that the config is not handed
    over as ``cfg``: the Runner would pretty-print it with yapf three times (~1.5 s a
    candidate, more than a proxy epoch on the MNIST demo). ``datasets`` (``{loader key:
    dataset}``) replace the dataset configs by built datasets, reused across candidates."""
    from mmengine.runner import Runner
    cfg = copy.deepcopy(cfg)
    for key, dataset in (datasets or {}).items():
        cfg[key]['dataset'] = dataset
    kwargs = {k: cfg[k] for k in _RUNNER_KEYS if k in cfg}
    kwargs.setdefault('default_scope', 'mmengine')
    return Runner(**kwargs)


@contextlib.contextmanager
def quiet_logger(level=logging.WARNING):
    """Raise the current MMLogger's level inside the block (weight-init reports)."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


def _release_runner(runner):
    """Close the file handlers and forget the global instances a Runner registered, so that
    hundreds of candidates in one process do not pile up open files and loggers."""
    from mmengine.logging import MessageHub, MMLogger
    from mmengine.registry import DefaultScope
    from mmengine.visualization import Visualizer
    name = runner.experiment_name
    for handler in list(runner.logger.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            runner.logger.removeHandler(handler)
    for cls in (MMLogger, MessageHub, Visualizer, DefaultScope):
        cls._instance_dict.pop(name, None)


#: datasets built in this process, by config (Ray workers evaluate many candidates each)
_DATASET_CACHE = {}


class _ClassifierEvaluatorBase:
    """Shared: the proxy classification config and building a candidate's classifier."""

    def __init__(self, base_config=DEFAULT_PROXY_CONFIG, input_size=None, in_channels=None,
                 cfg_options=None):
        from mmengine.config import Config
        self.base_config = base_config
        cfg = Config.fromfile(resolve_path(base_config))
        if cfg_options:
            cfg.merge_from_dict(dict(cfg_options))
        if cfg.model.get('type') != 'ImageClassifier' or \
                cfg.model.backbone.get('type') != 'UniNet':
            raise ValueError(f'{type(self).__name__}: {base_config} must define an '
                             f'ImageClassifier with a UniNet backbone')
        self.cfg = cfg.to_dict()
        self.input_size = input_size or self.cfg['model']['backbone'].get(
            'arch', {}).get('input_size', 32)
        mean = self.cfg['model'].get('data_preprocessor', {}).get('mean')
        self.in_channels = in_channels or (len(mean) if mean else 3)

    def input_shape(self):
        s = self.input_size
        h, w = (s, s) if isinstance(s, int) else s
        return (1, self.in_channels, h, w)

    def model_cfg(self, arch):
        """The classifier config of a candidate: the proxy config's, with the candidate's arch
        (built by ``UniNet`` from the registry) and the head's input width."""
        model = copy.deepcopy(self.cfg['model'])
        model['backbone']['arch'] = copy.deepcopy(arch)
        model['backbone']['out_indices'] = (len(arch['widths']) - 1,)
        model['backbone']['in_channels'] = self.in_channels
        model['head']['in_channels'] = arch['widths'][-1]
        return model

    def build_model(self, arch):
        from mmengine.registry import init_default_scope
        from mmpretrain.registry import MODELS
        import uninet_mm  # noqa: F401  (registers UniNet and its head)
        init_default_scope('mmpretrain')
        return MODELS.build(self.model_cfg(arch))

    def complexity(self, arch):
        """``(flops, params)`` of the candidate's classifier at the proxy resolution."""
        model = self.build_model(arch)
        return self._complexity_of(model)

    def _complexity_of(self, model):
        return count_complexity(model, self.input_shape(),
                                forward=lambda m, x: m(x, mode='tensor'))


@EVALUATORS.register_module(name='ProxyTrain')
class ProxyTrainEvaluator(_ClassifierEvaluatorBase):
    """Proxy training through MMEngine's Runner and MMPretrain's ImageClassifier.

    Args:
        base_config (str): an MMPretrain classification config with a UniNet backbone; its
            model (head, loss, preprocessor), dataloaders, evaluator and optimiser are used,
            only the arch, the schedule and the hooks change.
        epochs (int): proxy epochs.
        train_subset (int, optional): train on this many samples, evenly spaced over the
            training set (class-balanced for sorted data such as the embedded MNIST).
        val_subset (int, optional): validate on this many, likewise.
        batch_size (int, optional): training batch size (the config's otherwise).
        lr (float, optional): the optimiser's learning rate (the config's otherwise).
        warmup_iters (int): linear warm-up, then cosine annealing to the end of the epochs.
        input_size (int, optional): the proxy resolution for FLOPs (the arch's input_size).
        num_threads (int, optional): torch threads while training this candidate.
        work_dir (str, optional): where Runners write (a fresh folder per candidate, removed
            afterwards unless ``keep_work_dirs``); a temporary folder if None.
        cfg_options (dict, optional): merged into the base config first.
    """

    metric_name = 'accuracy'

    def __init__(self, base_config=DEFAULT_PROXY_CONFIG, epochs=1, train_subset=None,
                 val_subset=None, batch_size=None, lr=None, warmup_iters=10, input_size=None,
                 in_channels=None, num_threads=None, work_dir=None, keep_work_dirs=False,
                 cfg_options=None):
        super().__init__(base_config, input_size, in_channels, cfg_options)
        if epochs < 1:
            raise ValueError(f'ProxyTrainEvaluator: epochs must be >= 1, got {epochs}')
        self.epochs, self.warmup_iters = int(epochs), int(warmup_iters)
        self.batch_size, self.lr = batch_size, lr
        self.num_threads = num_threads
        self.work_dir, self.keep_work_dirs = work_dir, keep_work_dirs
        self.train_indices = self._subset('train_dataloader', train_subset)
        self.val_indices = self._subset('val_dataloader', val_subset)
        self._datasets = None

    def _subset(self, key, n):
        if not n:
            return None
        from mmengine.registry import init_default_scope
        from mmpretrain.registry import DATASETS
        init_default_scope('mmpretrain')
        ds_cfg = copy.deepcopy(self.cfg[key]['dataset'])
        ds_cfg['pipeline'] = []
        ds_cfg['lazy_init'] = True
        total = len(DATASETS.build(ds_cfg).load_data_list())
        n = min(int(n), total)
        return [int(i * total // n) for i in range(n)]

    def datasets(self):
        """The proxy's train and val datasets, built once per process (the embedded digits
        take ~0.5 s to load and resize) and shared by all its candidates."""
        if self._datasets is None:
            from mmengine.registry import init_default_scope
            from mmpretrain.registry import DATASETS
            init_default_scope('mmpretrain')
            self._datasets = {}
            for key, idx in (('train_dataloader', self.train_indices),
                             ('val_dataloader', self.val_indices)):
                ds_cfg = copy.deepcopy(self.cfg[key]['dataset'])
                if idx is not None:
                    ds_cfg['indices'] = idx
                cache_key = repr(sorted(ds_cfg.items(), key=lambda kv: kv[0]))
                if cache_key not in _DATASET_CACHE:
                    _DATASET_CACHE[cache_key] = DATASETS.build(ds_cfg)
                self._datasets[key] = _DATASET_CACHE[cache_key]
        return self._datasets

    def __getstate__(self):  # built datasets stay in their process (Ray ships the rest)
        state = dict(self.__dict__)
        state['_datasets'] = None
        return state

    def runner_cfg(self, arch, seed, work_dir):
        """The complete Runner config of one candidate."""
        cfg = copy.deepcopy(self.cfg)
        cfg['model'] = self.model_cfg(arch)
        for key, idx in (('train_dataloader', self.train_indices),
                         ('val_dataloader', self.val_indices)):
            if idx is not None:
                cfg[key]['dataset']['indices'] = idx
        if self.batch_size:
            cfg['train_dataloader']['batch_size'] = self.batch_size
        if self.lr:
            cfg['optim_wrapper']['optimizer']['lr'] = self.lr
        cfg['train_cfg'] = dict(by_epoch=True, max_epochs=self.epochs, val_interval=self.epochs)
        cfg['param_scheduler'] = [
            dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0,
                 end=max(1, self.warmup_iters)),
            dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=0,
                 end=self.epochs, convert_to_iter_based=True),
        ]
        cfg.pop('test_dataloader', None)
        cfg.pop('test_evaluator', None)
        cfg.pop('test_cfg', None)
        hooks = cfg.setdefault('default_hooks', {})
        hooks['checkpoint'] = None
        hooks['logger'] = dict(type='LoggerHook', interval=10 ** 6)
        hooks.pop('visualization', None)
        cfg['custom_hooks'] = [dict(type='SearchCandidateHook')]
        cfg['visualizer'] = dict(type='Visualizer', vis_backends=[])
        cfg['log_level'] = 'WARNING'
        cfg['work_dir'] = work_dir
        cfg['randomness'] = dict(seed=int(seed))
        cfg['load_from'], cfg['resume'] = None, False
        cfg['experiment_name'] = f'search_{uuid.uuid4().hex[:12]}'
        cfg['launcher'] = 'none'
        cfg['env_cfg'] = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'),
                              mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0))
        return cfg

    def __call__(self, arch, tokens=None, seed=0):
        from mmengine.registry import init_default_scope
        import uninet_mm  # noqa: F401
        import tempfile

        base = self.work_dir or tempfile.mkdtemp(prefix='uninet_search_')
        work_dir = osp.join(base, f'cand_{uuid.uuid4().hex[:8]}')
        runner = None
        try:
            with num_threads(self.num_threads):
                init_default_scope('mmpretrain')
                runner = make_runner(self.runner_cfg(arch, seed, work_dir),
                                     datasets=self.datasets())
                flops, params = self._complexity_of(runner.model)
                runner.model.train()
                runner.train()
            hook = next(h for h in runner.hooks if isinstance(h, SearchCandidateHook))
            if not hook.metrics or 'accuracy/top1' not in hook.metrics:
                raise RuntimeError(f'proxy training gave no accuracy/top1 (metrics: '
                                   f'{hook.metrics})')
            acc = float(hook.metrics['accuracy/top1']) / 100.
            if not math.isfinite(acc):
                raise CandidateDiverged(f'diverged: validation accuracy is {acc}')
            return dict(accuracy=acc, flops=flops, params=params, metric=self.metric_name)
        finally:
            if runner is not None:
                _release_runner(runner)
            if not self.keep_work_dirs:
                shutil.rmtree(work_dir, ignore_errors=True)
                if self.work_dir is None:
                    shutil.rmtree(base, ignore_errors=True)


@EVALUATORS.register_module(name='ZeroCost')
class ZeroCostEvaluator(_ClassifierEvaluatorBase):
    """NASWOT score at initialisation (no training): for one batch of real images, the binary
    codes ``x > 0`` of the inputs of every GELU/ReLU form a kernel ``K = C C^T +
    (1 - C)(1 - C)^T``; the score is ``log|K|`` (higher: the network separates the images
    better). Reported as the ``accuracy`` field with ``metric='naswot'``, for screening and
    ranking; it is not an accuracy.
    """

    metric_name = 'naswot'

    def __init__(self, base_config=DEFAULT_PROXY_CONFIG, batch_size=32, input_size=None,
                 in_channels=None, num_threads=None, cfg_options=None):
        super().__init__(base_config, input_size, in_channels, cfg_options)
        self.batch_size, self.num_threads = int(batch_size), num_threads
        self._batch = None

    def batch(self):
        """One preprocessed batch of the proxy's training data (cached)."""
        if self._batch is None:
            from mmengine.registry import init_default_scope
            from mmengine.runner import Runner
            from mmpretrain.registry import MODELS
            init_default_scope('mmpretrain')
            loader_cfg = copy.deepcopy(self.cfg['train_dataloader'])
            loader_cfg['batch_size'] = self.batch_size
            loader_cfg['num_workers'] = 0
            loader_cfg.pop('persistent_workers', None)
            loader = Runner.build_dataloader(loader_cfg, seed=0)
            data = next(iter(loader))
            pre = MODELS.build(self.cfg['model']['data_preprocessor'] | dict(
                type=self.cfg['model']['data_preprocessor'].get('type', 'ClsDataPreprocessor')))
            self._batch = pre(data, training=False)['inputs']
        return self._batch

    def __call__(self, arch, tokens=None, seed=0):
        with num_threads(self.num_threads):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = self.build_model(arch)
                with quiet_logger():
                    model.init_weights()
            flops, params = self._complexity_of(model)
            codes = []
            batch = self.batch()

            def hook(module, inputs, output):
                # per image; token ops run on (images x windows, ...), grouped by image
                codes.append((inputs[0] > 0).reshape(batch.shape[0], -1).float())

            handles = [m.register_forward_hook(hook) for m in model.modules()
                       if isinstance(m, (nn.GELU, nn.ReLU))]
            try:
                model.train()  # batch statistics, as NASWOT scores untrained networks
                with torch.no_grad():
                    model(batch, mode='tensor')
            finally:
                for h in handles:
                    h.remove()
            c = torch.cat(codes, 1).double()
            k = c @ c.t() + (1 - c) @ (1 - c).t()
            sign, logdet = torch.linalg.slogdet(k)
            score = float(logdet) if sign > 0 else float('-inf')
            if not math.isfinite(score):
                raise CandidateDiverged(f'NASWOT kernel is singular (sign {float(sign)})')
        return dict(accuracy=score, flops=flops, params=params, metric=self.metric_name)


@EVALUATORS.register_module(name='Synthetic')
class SyntheticEvaluator:
    """A known best architecture: ``accuracy`` = share of tokens equal to ``best_tokens``,
    FLOPs fixed at ``flops`` (so the reward is the accuracy when ``flops`` is the target).

    ``fail_on=(position, value)`` raises for candidates with that token (a build failure
    stand-in), ``sleep`` seconds per call mimic training time, and ``log_file`` gets one line
    per call (the tests count re-trainings with it).
    """

    metric_name = 'synthetic'

    def __init__(self, best_tokens, flops=1.0, sleep=0., fail_on=None, log_file=None):
        self.best_tokens = [int(t) for t in best_tokens]
        self.flops, self.sleep = flops, float(sleep)
        self.fail_on = tuple(fail_on) if fail_on else None
        self.log_file = log_file

    def complexity(self, arch):
        return self.flops, 0

    def __call__(self, arch, tokens=None, seed=0):
        if tokens is None or len(tokens) != len(self.best_tokens):
            raise ValueError(f'SyntheticEvaluator: needs {len(self.best_tokens)} tokens')
        if self.log_file:
            with open(self.log_file, 'a') as f:
                f.write(' '.join(map(str, tokens)) + '\n')
                f.flush()
                os.fsync(f.fileno())
        if self.sleep:
            time.sleep(self.sleep)
        if self.fail_on and tokens[self.fail_on[0]] == self.fail_on[1]:
            raise RuntimeError(f'synthetic failure: token {self.fail_on[0]} is '
                               f'{self.fail_on[1]}')
        acc = sum(a == b for a, b in zip(tokens, self.best_tokens)) / len(tokens)
        return dict(accuracy=acc, flops=self.flops, params=0, metric=self.metric_name)


def build_evaluator(cfg):
    """``dict(type='ProxyTrain' | 'ZeroCost' | 'Synthetic' | <registered>, **kwargs)`` -> an
    evaluator (a callable is returned as is)."""
    if callable(cfg) and not isinstance(cfg, dict):
        return cfg
    cfg = dict(cfg)
    if cfg.get('type') == 'ZeroCost':  # `--cfg-options evaluator.type=ZeroCost` on a training config
        for key in _TRAINING_ONLY:
            cfg.pop(key, None)
    return build_from(EVALUATORS, 'evaluator', cfg)


#: ProxyTrain arguments that mean nothing without training
_TRAINING_ONLY = ('epochs', 'train_subset', 'val_subset', 'lr', 'warmup_iters', 'work_dir',
                  'keep_work_dirs')
