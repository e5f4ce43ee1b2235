# The demo classifier (configs/cls/uninet_mnist_demo.py) on two-digit canvases of the embedded
# MNIST digits (uninet_mm/datasets/digit_pairs.py: 4,000 train / 1,000 val canvases, 14x14
# digits at random positions, label = the class of the left digit, the right one a distractor):
# the network must tell where a digit is as well as what it is. The task of the second proxy
# study (docs/search.md, "Does the proxy rank like longer training?").
#   OMP_NUM_THREADS=1 python tools/train.py configs/cls/uninet_mnist_pairs.py
_base_ = ['./uninet_mnist_demo.py']

train_dataloader = dict(
    dataset=dict(_delete_=True, type='MNISTDigitPairs', split='train', label='left',
                 pipeline=[dict(type='RandomCrop', crop_size=32, padding=2),
                           dict(type='PackInputs')]))
val_dataloader = dict(
    dataset=dict(_delete_=True, type='MNISTDigitPairs', split='val', label='left',
                 pipeline=[dict(type='PackInputs')]))
test_dataloader = val_dataloader
