"""MMEngine hooks of uninet_mm (registered in MMEngine's ``HOOKS``, so every library's runner
builds them by name, e.g. ``custom_hooks = [dict(type='InferenceFormHook')]``)."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from ..models.deploy import fuse_conv_bn, reparameterize


@HOOKS.register_module()
class InferenceFormHook(Hook):
    """Before testing, once the checkpoint is loaded (``before_test`` runs after
    ``Runner.load_or_resume``): with ``deploy``, every module that has an inference form takes
    it (:func:`uninet_mm.models.deploy.reparameterize`: the UniNet backbone, the DSMs of the
    Swin/PVT retrofits); BatchNorm folded into the adjacent convolutions everywhere (the
    modules' own ``fuse_conv_bn()``, then ``mmcv.cnn.fuse_conv_bn`` for the neck and heads).
    ``tools/test.py --fuse-conv-bn`` / ``--deploy``."""

    priority = 'VERY_HIGH'

    def __init__(self, deploy=False):
        self.deploy = deploy

    def before_test(self, runner):
        from mmcv.cnn import fuse_conv_bn as fuse_remaining_conv_bn
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if self.deploy:
            reparameterize(model)
        fuse_conv_bn(model)
        fuse_remaining_conv_bn(model)
