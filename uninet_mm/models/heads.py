"""Classification head of the released UniNet models.

``conv 1x1 (C -> 1280, no bias) -> BN -> GELU -> global average pool -> dropout -> Linear``,
as an MMPretrain ``ClsHead`` so ``ImageClassifier`` computes losses, accuracy and predictions.
"""
from collections import OrderedDict

import torch.nn as nn
from mmengine.registry import DefaultScope
from mmpretrain.models.heads import ClsHead

from ..registry import register_model


@register_model
class UniNetClsHead(ClsHead):
    """UniNet classification head.

    Args:
        num_classes (int): number of classes.
        in_channels (int): width of the last backbone stage.
        mid_channels (int): width of the 1x1 conv before pooling (1280 in the release).
        dropout (float): dropout before the classifier.
        **kwargs: ``loss``, ``topk``, ``cal_acc`` of :class:`ClsHead`.
    """

    def __init__(self, num_classes, in_channels, mid_channels=1280, dropout=0.,
                 init_cfg=dict(type='TruncNormal', layer='Linear', std=.02, bias=0.),
                 **kwargs):
        # ClsHead builds its loss with ``MODELS.build``, which looks in the registry of the
        # *current* default scope (left behind by any Runner: 'mmengine', 'mmdet', ...); the
        # loss of a classification head is always MMPretrain's
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            super().__init__(init_cfg=init_cfg, **kwargs)
        if num_classes <= 0:
            raise ValueError(f'UniNetClsHead: num_classes={num_classes} must be positive')
        self.num_classes, self.in_channels = num_classes, in_channels
        self.pre = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(in_channels, mid_channels, 1, bias=False),
            norm=nn.BatchNorm2d(mid_channels),
            act=nn.GELU()))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(mid_channels, num_classes)

    def pre_logits(self, feats):
        """The pooled 1280-d feature of the last stage's map."""
        return self.dropout(self.pre(feats[-1]).mean((2, 3)))

    def forward(self, feats):
        return self.fc(self.pre_logits(feats))
