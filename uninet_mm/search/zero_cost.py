"""Zero-cost screening: NASWOT (Mellor et al., ICML 2021) of an untrained candidate."""
import copy
import math

import torch
import torch.nn as nn

from .registry import EVALUATORS
from .runner import (
    DEFAULT_PROXY_CONFIG,
    CandidateDiverged,
    ClassifierEvaluatorBase,
    num_threads,
    quiet_logger,
)


@EVALUATORS.register_module(name='ZeroCost')
class ZeroCostEvaluator(ClassifierEvaluatorBase):
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
