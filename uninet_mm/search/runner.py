"""Runner plumbing of the proxy evaluators: building a candidate's MMEngine ``Runner``
without the config pretty-printing, the hook that stops a diverged candidate and keeps its
metrics, releasing a Runner's global instances, FLOPs counting, and the candidate classifier
built from a classification config (``ClassifierEvaluatorBase``)."""
import contextlib
import copy
import logging
import math
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..utils.paths import find_config

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
    """A config path as given, or under the clone's or the installed package's ``configs/``."""
    return find_config(path)


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
    what the evaluator reads: the last validation metrics, the mean training loss (the
    training-speed estimate of Ru et al. 2021, over all iterations and over the last
    ``tail`` fraction of them) and the validation negative log-likelihood of the true class."""

    priority = 'VERY_LOW'

    def __init__(self, tail=0.25):
        self.metrics = None
        self.tail = float(tail)
        self.train_losses = []
        self._nll = [0., 0]

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        loss = (outputs or {}).get('loss')
        if loss is None:
            return
        loss = torch.as_tensor(loss).detach()
        if not torch.isfinite(loss).all():
            raise CandidateDiverged(f'diverged: non-finite training loss {loss.tolist()} at '
                                    f'iteration {runner.iter + 1}')
        self.train_losses.append(float(loss.sum()))

    def before_val_epoch(self, runner):
        self._nll = [0., 0]

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        for sample in outputs or ():
            score, label = sample.get('pred_score'), sample.get('gt_label')
            if score is None or label is None:
                continue
            p = float(score.reshape(-1)[int(label.reshape(-1)[0])])
            self._nll[0] -= math.log(max(p, 1e-12))
            self._nll[1] += 1

    def after_val_epoch(self, runner, metrics=None):
        self.metrics = dict(metrics or {})

    def summary(self):
        """``train_loss`` (mean over all iterations), ``train_loss_tail`` (over the last
        ``tail`` of them), ``val_nll`` (mean over the last validation); absent keys: not
        measured."""
        out = {}
        if self.train_losses:
            n = len(self.train_losses)
            tail = self.train_losses[n - max(1, round(self.tail * n)):]
            out['train_loss'] = sum(self.train_losses) / n
            out['train_loss_tail'] = sum(tail) / len(tail)
        if self._nll[1]:
            out['val_nll'] = self._nll[0] / self._nll[1]
        return out


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


class ClassifierEvaluatorBase:
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


_ClassifierEvaluatorBase = ClassifierEvaluatorBase
