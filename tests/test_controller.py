"""PPO controller: the advantage estimators against hand-computed values (docs/search.md,
"Controller")."""
import math

import pytest
import torch

from uninet_mm.search.controller import PPOController


def test_rank_advantages_are_centred_ranks_with_shared_ties():
    c = PPOController([3, 3], advantage='rank')
    # ranks 1.5 (tie of 0.3), 0, 1.5, 3 among n=4 -> (rank - 1.5) / 1.5
    adv = c._advantages(torch.tensor([0.3, 0.1, 0.3, 0.9]), None)
    assert adv.tolist() == pytest.approx([0., -1., 0., 1.])


def test_running_advantages_use_the_updated_scale():
    c = PPOController([3, 3], advantage='running', baseline_decay=0.5)
    c._track(torch.tensor([1., 3.]))           # mean 2, variance 1
    c._track(torch.tensor([5., 5.]))           # var 0.5*1 + 0.5*(0 + 3^2) = 5, mean 3.5
    assert (c.baseline, c.variance) == pytest.approx((3.5, 5.))
    adv = c._advantages(torch.tensor([5., 20.]), None)
    assert adv.tolist() == pytest.approx([1.5 / math.sqrt(5), 3.])   # clipped at +3


def test_ema_advantages_subtract_the_baseline_and_divide_by_the_batch_std():
    c = PPOController([3, 3], advantage='ema')
    c.baseline = 2.
    # r - 2 = [-1, 1, 3]; their (unbiased) std is 2
    adv = c._advantages(torch.tensor([1., 3., 5.]), torch.tensor([1., 3., 5.]))
    assert adv.tolist() == pytest.approx([-0.5, 0.5, 1.5])


def test_a_failed_candidate_is_only_the_worst_rank():
    c = PPOController([3, 3], advantage='rank')
    adv = c._advantages(torch.tensor([0.80, 0.81, 0., 0.79]), None)
    assert adv.tolist() == pytest.approx([1 / 3, 1., -1., -1 / 3])
