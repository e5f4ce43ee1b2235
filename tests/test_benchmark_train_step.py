"""tools/benchmark_train_step.py: the synthetic batch is what the data loader would pack, and
the timed step is MMEngine's whole training step (the optimiser moves the weights)."""
import numpy as np
import pytest
import torch

from uninet_mm.apis import load_tool

DEMO = 'configs/mmdet/mask_rcnn_uninet_demo.py'


def test_synthetic_batch_masks_fill_their_boxes():
    bench = load_tool('benchmark_train_step')
    data = bench.synthetic_batch((61, 97), boxes=5, num_classes=3, seed=1)
    (image,), (sample,) = data['inputs'], data['data_samples']
    assert image.dtype == torch.uint8 and image.shape == (3, 61, 97)
    assert sample.metainfo['img_shape'] == (61, 97)
    gt = sample.gt_instances
    assert len(gt) == 5 and gt.labels.min() >= 0 and gt.labels.max() < 3
    for box, mask in zip(gt.bboxes.tolist(), gt.masks.masks):
        x0, y0, x1, y1 = box
        assert 0 <= x0 < x1 <= 96 and 0 <= y0 < y1 <= 60
        ys, xs = np.nonzero(mask)
        # the mask is the box: its extent is the box's (to the pixel) and it has no holes
        assert abs(xs.min() - x0) <= 0.5 and abs(xs.max() - x1) <= 0.5
        assert abs(ys.min() - y0) <= 0.5 and abs(ys.max() - y1) <= 0.5
        assert mask.sum() == (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)


def test_run_one_times_the_whole_training_step(monkeypatch):
    bench = load_tool('benchmark_train_step')
    args = bench.parse_args([DEMO, '--shape', '64', '96', '--iters', '2', '--warmup', '0',
                             '--threads', '1', '--malloc', 'glibc'])
    steps = []
    from mmdet.models.detectors import MaskRCNN
    original = MaskRCNN.train_step

    def spy(self, data, optim_wrapper):
        before = [p.detach().clone() for p in self.parameters() if p.requires_grad]
        out = original(self, data, optim_wrapper)
        after = [p for p in self.parameters() if p.requires_grad]
        steps.append(sum(not torch.equal(a, b) for a, b in zip(before, after)))
        return out

    threads = torch.get_num_threads()
    monkeypatch.setattr(MaskRCNN, 'train_step', spy)
    result = bench.run_one(DEMO, args)
    torch.set_num_threads(threads)
    assert len(steps) == 2 and min(steps) > 0   # the optimiser moved weights in every step
    assert len(result['seconds_per_step']) == 2 and result['best_s'] > 0
    assert np.isfinite(result['loss']) and result['loss'] > 0


def test_bad_arguments_are_refused_with_the_fix(tmp_path, capsys):
    bench = load_tool('benchmark_train_step')
    with pytest.raises(SystemExit):
        bench.parse_args(['configs/mmdet/no_such.py'])
    assert 'not found' in capsys.readouterr().err
    out = tmp_path / 'r.json'
    out.write_text('{}')
    with pytest.raises(SystemExit):
        bench.parse_args([DEMO, '--out', str(out)])
    assert '--force' in capsys.readouterr().err and out.read_text() == '{}'
