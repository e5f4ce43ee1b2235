"""The metrics the configs use, on constructed predictions whose answer is known by hand:
MMDetection's ``CocoMetric`` (pycocotools underneath; also called directly) and MMSegmentation's
``IoUMetric``. The same helpers check the numbers of the real pipelines in test_det_seg.py and
test_tools.py against an independent computation from their predictions."""
import json

import numpy as np
import pytest
import torch

#: COCO's 10 IoU thresholds .50:.05:.95 and 101 recall points
IOU_THRS = [0.5 + 0.05 * i for i in range(10)]

# two images (40x50), two classes, two 10x10 boxes per class
IMAGES = [dict(id=1, width=50, height=40, file_name='a.jpg'),
          dict(id=2, width=50, height=40, file_name='b.jpg')]
CLASSES = ('cat', 'dog')
GT = [  # (image, class index, x, y, w, h)
    (1, 0, 2, 3, 10, 10), (1, 1, 20, 5, 10, 10),
    (2, 0, 30, 20, 10, 10), (2, 1, 5, 25, 10, 10)]


def write_coco(path):
    anns = []
    for n, (img, cls, x, y, w, h) in enumerate(GT):
        anns.append(dict(id=n + 1, image_id=img, category_id=cls + 1, bbox=[x, y, w, h],
                         area=w * h, iscrowd=0,
                         segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]]))
    cats = [dict(id=i + 1, name=c) for i, c in enumerate(CLASSES)]
    with open(path, 'w') as f:
        json.dump(dict(images=IMAGES, annotations=anns, categories=cats), f)
    return path


def box_iou(a, b):
    """IoU of two (x, y, w, h) boxes, by hand."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def coco_metric(ann_file, preds, tmp_path, metric=('bbox',)):
    """MMDetection's CocoMetric on ``preds``: {image id: [(class, x, y, w, h, score)]}."""
    from mmdet.evaluation import CocoMetric
    m = CocoMetric(ann_file=ann_file, metric=list(metric),
                   outfile_prefix=str(tmp_path / 'res'))
    m.dataset_meta = dict(classes=CLASSES)
    samples = []
    for img in IMAGES:
        rows = preds.get(img['id'], [])
        boxes = torch.tensor([[x, y, x + w, y + h] for _, x, y, w, h, _ in rows],
                             dtype=torch.float32).reshape(-1, 4)
        inst = dict(bboxes=boxes, scores=torch.tensor([r[-1] for r in rows]).float(),
                    labels=torch.tensor([r[0] for r in rows], dtype=torch.long))
        if 'segm' in metric:
            masks = torch.zeros(len(rows), img['height'], img['width'], dtype=torch.bool)
            for k, (_, x, y, w, h, _) in enumerate(rows):
                masks[k, y:y + h, x:x + w] = True
            inst['masks'] = masks
        samples.append(dict(img_id=img['id'], ori_shape=(img['height'], img['width']),
                            pred_instances=inst))
    m.process({}, samples)
    return m.evaluate(len(samples))


def pycocotools_stats(ann_file, results, iou_type='bbox'):
    """pycocotools directly: COCOeval stats [mAP, AP50, AP75, ...] of COCO-format results."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    gt = COCO(ann_file)
    if not results:
        return None
    ev = COCOeval(gt, gt.loadRes(results), iou_type)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev.stats


def as_results(preds):
    return [dict(image_id=img, category_id=cls + 1, bbox=[x, y, w, h], score=s)
            for img, rows in preds.items() for cls, x, y, w, h, s in rows]


@pytest.fixture
def ann_file(tmp_path):
    return write_coco(str(tmp_path / 'gt.json'))


def test_perfect_detections_give_ap_one(ann_file, tmp_path):
    preds = {}
    for img, cls, x, y, w, h in GT:
        preds.setdefault(img, []).append((cls, x, y, w, h, 0.9))
    res = coco_metric(ann_file, preds, tmp_path, metric=('bbox', 'segm'))
    for key in ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'segm_mAP', 'segm_mAP_50'):
        assert res[f'coco/{key}'] == pytest.approx(1.0), key
    assert pycocotools_stats(ann_file, as_results(preds))[0] == pytest.approx(1.0)


def test_shifted_boxes_give_the_share_of_thresholds_they_pass(ann_file, tmp_path):
    """Every box shifted right by 2 px: IoU = 8*10 / (2*100 - 80) = 2/3 for all of them, so
    the boxes match at IoU .50, .55, .60, .65 and miss at .70 .. .95: AP = 1 at 4 of the 10
    thresholds, mAP = 0.4, AP50 = 1, AP75 = 0."""
    preds = {}
    for img, cls, x, y, w, h in GT:
        preds.setdefault(img, []).append((cls, x + 2, y, w, h, 0.9))
        assert box_iou((x, y, w, h), (x + 2, y, w, h)) == pytest.approx(2 / 3)
    expected = sum(t <= 2 / 3 for t in IOU_THRS) / len(IOU_THRS)
    assert expected == pytest.approx(0.4)
    res = coco_metric(ann_file, preds, tmp_path)
    assert res['coco/bbox_mAP'] == pytest.approx(0.4, abs=1e-3)  # CocoMetric rounds to 3
    assert res['coco/bbox_mAP_50'] == pytest.approx(1.0)
    assert res['coco/bbox_mAP_75'] == pytest.approx(0.0)
    stats = pycocotools_stats(ann_file, as_results(preds))
    assert stats[:3] == pytest.approx([0.4, 1.0, 0.0])


def test_half_the_objects_found_gives_51_of_101_recall_points(ann_file, tmp_path):
    """One of the two boxes of each class found, exactly: precision 1 up to recall 0.5 and no
    detection beyond, so COCO's 101-point AP is 51/101 at every threshold."""
    preds = {1: [(c, x, y, w, h, 0.9) for img, c, x, y, w, h in GT if img == 1]}
    res = coco_metric(ann_file, preds, tmp_path)
    assert res['coco/bbox_mAP'] == pytest.approx(51 / 101, abs=1e-3)
    assert pycocotools_stats(ann_file, as_results(preds))[0] == pytest.approx(51 / 101)


def test_a_wrong_class_or_a_low_ranked_true_box_costs_ap(ann_file, tmp_path):
    """The class matters: perfect boxes with the labels swapped give AP 0."""
    preds = {}
    for img, cls, x, y, w, h in GT:
        preds.setdefault(img, []).append((1 - cls, x, y, w, h, 0.9))
    assert coco_metric(ann_file, preds, tmp_path)['coco/bbox_mAP'] == pytest.approx(0.0)


# ---------------------------------------------------------------------------- segmentation
def iou_metric(pairs, num_classes):
    """MMSegmentation's IoUMetric on [(pred, gt)] label maps."""
    from mmseg.evaluation import IoUMetric
    m = IoUMetric(iou_metrics=['mIoU'])
    m.dataset_meta = dict(classes=tuple(f'c{i}' for i in range(num_classes)))
    m.process({}, [dict(pred_sem_seg=dict(data=torch.as_tensor(p)[None]),
                        gt_sem_seg=dict(data=torch.as_tensor(g)[None])) for p, g in pairs])
    return m.evaluate(len(pairs))


def miou_by_hand(pairs, num_classes, ignore_index=255):
    """Mean over the classes present in the prediction or the ground truth of
    |pred = c and gt = c| / |pred = c or gt = c|, ignored pixels left out, in percent."""
    inter = np.zeros(num_classes)
    union = np.zeros(num_classes)
    for pred, gt in pairs:
        pred, gt = np.asarray(pred), np.asarray(gt)
        keep = gt != ignore_index
        for c in range(num_classes):
            p, g = (pred == c) & keep, (gt == c) & keep
            inter[c] += (p & g).sum()
            union[c] += (p | g).sum()
    present = union > 0
    return 100 * float(np.mean(inter[present] / union[present]))


def test_perfect_segmentation_gives_miou_100():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 255]])
    assert iou_metric([(gt.clip(0, 2), gt)], 3)['mIoU'] == pytest.approx(100.0)


def test_shifted_segmentation_gives_the_hand_computed_miou():
    """4x4, gt: columns 0-1 class 0, 2-3 class 1; prediction: columns 0-2 class 0. Class 0:
    8 / 12, class 1: 4 / 8, mIoU = (2/3 + 1/2) / 2 = 58.33 %. An ignored pixel (255) leaves
    both maps' counts: with (0, 3) ignored, class 1 is 3 / 7, whatever is predicted there."""
    gt = np.array([[0, 0, 1, 1]] * 4)
    pred = np.array([[0, 0, 0, 1]] * 4)
    res = iou_metric([(pred, gt)], 2)
    assert res['mIoU'] == pytest.approx(100 * (2 / 3 + 1 / 2) / 2, abs=0.01)
    assert res['aAcc'] == pytest.approx(100 * 12 / 16, abs=0.01)
    assert miou_by_hand([(pred, gt)], 2) == pytest.approx(100 * (2 / 3 + 1 / 2) / 2)
    gt_ignored = gt.copy()
    gt_ignored[0, 3] = 255
    expected = 100 * (8 / 12 + 3 / 7) / 2
    for at_ignored in (0, 1):
        pred_there = pred.copy()
        pred_there[0, 3] = at_ignored
        assert iou_metric([(pred_there, gt_ignored)], 2)['mIoU'] == pytest.approx(
            expected, abs=0.01)
        assert miou_by_hand([(pred_there, gt_ignored)], 2) == pytest.approx(expected)


def test_class_absent_from_both_is_left_out_of_the_mean():
    """A third class that neither map has does not count as IoU 0 (nor as 1)."""
    gt = np.array([[0, 0, 1, 1]] * 4)
    pred = np.array([[0, 0, 0, 1]] * 4)
    assert iou_metric([(pred, gt)], 3)['mIoU'] == pytest.approx(58.33, abs=0.01)


# ------------------------------------------------------- helpers for the pipeline tests
def det_results_of(preds, img_ids, cat_ids):
    """COCO-format results of mmdet predictions (xyxy boxes -> xywh), written independently of
    CocoMetric's own conversion."""
    out = []
    for img_id, pred in zip(img_ids, preds):
        boxes = np.asarray(pred['bboxes'], dtype=np.float64)
        for (x1, y1, x2, y2), s, lab in zip(boxes, np.asarray(pred['scores']),
                                            np.asarray(pred['labels'])):
            out.append(dict(image_id=int(img_id), category_id=int(cat_ids[int(lab)]),
                            bbox=[float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                            score=float(s)))
    return out


def coco_cat_ids(ann_file, classes):
    with open(ann_file) as f:
        cats = json.load(f)['categories']
    by_name = {c['name']: c['id'] for c in cats}
    return [by_name[c] for c in classes]


def coco_ap_by_pycocotools(ann_file, results, iou_type='bbox'):
    stats = pycocotools_stats(ann_file, results, iou_type)
    return None if stats is None else float(stats[0])
