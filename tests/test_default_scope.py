"""Models build the same under any default scope (issue 18): a Runner leaves its scope behind
('mmengine' by default, or the config's 'mmdet' / 'mmseg'), and building a classifier head
afterwards used to look its loss up in that scope's registry (KeyError: CrossEntropyLoss is not
in the mmengine::model registry) or, under 'mmdet', to get MMDetection's loss."""
import pytest
from mmengine.registry import DefaultScope

import uninet_mm  # noqa: F401
from uninet_mm.models import UniNet, UniNetClsHead

pytestmark = pytest.mark.usefixtures('one_thread')

ARCH = dict(gops=['DWConv', 'SA'], dsms=[None, 'L'], strides=[1, 2], widths=[8, 16],
            repeats=[1, 1], expansions=[1, 2], stem_width=8, head_dim=8, window_size=4)


@pytest.mark.parametrize('scope', [None, 'mmengine', 'mmdet', 'mmseg', 'mmpretrain'])
def test_head_and_classifier_build_under_any_default_scope(scope):
    from mmpretrain.models.losses import CrossEntropyLoss
    from mmpretrain.registry import MODELS
    name = f'test-scope-{scope}'
    previous = DefaultScope._instance_dict.copy()
    try:
        if scope is None:
            DefaultScope._instance_dict.clear()  # no default scope at all
        else:
            DefaultScope.get_instance(name, scope_name=scope)
        head = UniNetClsHead(10, 16)
        assert type(head.loss_module) is CrossEntropyLoss
        model = MODELS.build(dict(
            type='mmpretrain.ImageClassifier',  # upstream's parts named with their scope
            data_preprocessor=dict(type='mmpretrain.ClsDataPreprocessor'),
            backbone=dict(type='UniNet', arch=ARCH, out_indices=(1,)),
            head=dict(type='UniNetClsHead', num_classes=10, in_channels=16,
                      loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1))))
        assert isinstance(model.backbone, UniNet)
        assert type(model.head.loss_module).__name__ == 'LabelSmoothLoss'
        assert type(model.head.loss_module).__module__.startswith('mmpretrain.')
        current = DefaultScope.get_current_instance()
        assert (current.scope_name if current else None) == scope  # left as it was
    finally:
        DefaultScope._instance_dict.clear()
        DefaultScope._instance_dict.update(previous)
