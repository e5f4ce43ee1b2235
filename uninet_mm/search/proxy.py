"""Proxy training of a candidate through MMEngine's ``Runner`` and MMPretrain's
``ImageClassifier`` (paper Sec. 3.5: a few epochs of the search task), with the datasets
built once per process and shared by its candidates."""
import copy
import math
import os.path as osp
import shutil
import uuid

from .registry import EVALUATORS
from .runner import (
    DEFAULT_PROXY_CONFIG,
    CandidateDiverged,
    ClassifierEvaluatorBase,
    SearchCandidateHook,
    _release_runner,
    make_runner,
    num_threads,
)

#: datasets built in this process, by config (Ray workers evaluate many candidates each)
_DATASET_CACHE = {}


#: the FLOPs at which the early-epoch extrapolation equals the measured top-1
FLOPS_REF = 1e7


def extrapolate(top1, flops, slope, flops_ref=FLOPS_REF):
    """Early-epoch extrapolation of a short training's top-1 to a longer one's:
    ``top1 + slope * ln(flops / flops_ref)`` (larger networks gain more in later epochs;
    docs/search.md, "Third study"). ``flops_ref`` only shifts the score, not its ranking."""
    if flops <= 0 or flops_ref <= 0:
        raise ValueError(f'extrapolate: FLOPs must be > 0, got {flops} and {flops_ref}')
    return float(top1) + float(slope) * math.log(flops / flops_ref)


@EVALUATORS.register_module(name='ProxyTrain')
class ProxyTrainEvaluator(ClassifierEvaluatorBase):
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
        flops_slope (float, optional): report :func:`extrapolate` of the top-1 with this
            slope as ``accuracy`` (``metric='top1+ln(FLOPs)'``; the measured top-1 stays in
            ``top1``) instead of the top-1 itself.
        flops_ref (float): the FLOPs at which the extrapolation equals the top-1.
    """

    metric_name = 'accuracy'

    def __init__(self, base_config=DEFAULT_PROXY_CONFIG, epochs=1, train_subset=None,
                 val_subset=None, batch_size=None, lr=None, warmup_iters=10, input_size=None,
                 in_channels=None, num_threads=None, work_dir=None, keep_work_dirs=False,
                 cfg_options=None, flops_slope=None, flops_ref=FLOPS_REF):
        super().__init__(base_config, input_size, in_channels, cfg_options)
        if epochs < 1:
            raise ValueError(f'ProxyTrainEvaluator: epochs must be >= 1, got {epochs}')
        self.epochs, self.warmup_iters = int(epochs), int(warmup_iters)
        self.flops_slope, self.flops_ref = flops_slope, float(flops_ref)
        if flops_slope is not None:
            self.metric_name = 'top1+ln(FLOPs)'
            extrapolate(0., 1., flops_slope, self.flops_ref)  # a bad flops_ref fails here
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
        import tempfile

        from mmengine.registry import init_default_scope

        import uninet_mm  # noqa: F401

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
            score = acc if self.flops_slope is None else extrapolate(
                acc, flops, self.flops_slope, self.flops_ref)
            return dict(accuracy=score, top1=acc, flops=flops, params=params,
                        metric=self.metric_name, **hook.summary())
        finally:
            if runner is not None:
                _release_runner(runner)
            if not self.keep_work_dirs:
                shutil.rmtree(work_dir, ignore_errors=True)
                if self.work_dir is None:
                    shutil.rmtree(base, ignore_errors=True)
