"""minirl.scorers: the scorer protocol and the ensemble's mean - k std, against hand-computed numbers."""

import math

import pytest
import torch

from minirl.data import TrajectoryBatch
from minirl.scorers import EnsembleScorer, as_scorer


def batch_of(lengths):
    """A tabular batch whose rows have the given numbers of real steps."""
    T = max(lengths)
    mask = torch.arange(T)[None] < torch.tensor(lengths)[:, None]
    return TrajectoryBatch(obs=torch.zeros(len(lengths), T, dtype=torch.long), actions=torch.zeros(len(lengths), T,
                           dtype=torch.long), mask=mask)


class Model:
    def score(self, batch):
        return batch.lengths.float() * 2


def test_as_scorer_reads_models_callables_and_a_default():
    b = batch_of([1, 3, 2])
    for scorer, expected in ((Model(), [2.0, 6.0, 4.0]), (lambda x: x.lengths, [1.0, 3.0, 2.0])):
        s = as_scorer(scorer)(b)
        assert s.dtype == torch.float64 and s.tolist() == expected
    assert as_scorer(None, lambda x: -x.lengths)(b).tolist() == [-1.0, -3.0, -2.0]


def test_as_scorer_refuses_what_cannot_score():
    with pytest.raises(ValueError, match="scorer: None means"):
        as_scorer(None)
    with pytest.raises(ValueError, match="scorer: must have .score"):
        as_scorer(3)
    with pytest.raises(ValueError, match=r"scorer: must return \(B,\)"):
        as_scorer(lambda x: torch.zeros(5))(batch_of([1, 2]))


def test_ensemble_is_mean_minus_k_population_std():
    b = batch_of([1, 2, 4])
    members = [lambda x, c=c: x.lengths.double() + c for c in (0.0, 1.0, 2.0)]
    ens = EnsembleScorer(members, k=2.0)
    # members differ by a constant: mean = length + 1, population std = sqrt(2/3)
    torch.testing.assert_close(ens(b), torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64) + 1 - 2 * math.sqrt(2 / 3))
    assert ens.member_scores(b).shape == (3, 3)
    torch.testing.assert_close(EnsembleScorer(members[:1], k=5.0)(b), b.lengths.double())  # one member: std 0
    torch.testing.assert_close(EnsembleScorer(members, k=0.0)(b), b.lengths.double() + 1)  # k = 0: the mean


def test_ensemble_refuses_bad_settings():
    with pytest.raises(ValueError, match="models: need a non-empty"):
        EnsembleScorer([])
    with pytest.raises(ValueError, match="k: must be a finite number >= 0"):
        EnsembleScorer([lambda b: b.lengths], k=-1)
    with pytest.raises(ValueError, match="scorer: must have .score"):
        EnsembleScorer([object()])
