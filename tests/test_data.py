"""The trajectory batch: validation, padding, indexing and masked reductions."""

import pytest
import torch

from minirl.data import TrajectoryBatch


def make_batch(B=3, T=4, lengths=(4, 2, 3)):
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    obs = torch.arange(B * T).reshape(B, T)
    actions = (obs % 2) * mask
    return TrajectoryBatch(obs=obs, actions=actions, mask=mask, rewards=torch.ones(B, T) * mask)


def test_sizes_and_masked_reductions():
    b = make_batch()
    assert (b.batch_size, b.horizon, b.n_steps) == (3, 4, 9)
    assert b.lengths.tolist() == [4, 2, 3]
    x = torch.arange(12.0).reshape(3, 4)
    # real steps: row0 0..3, row1 4,5, row2 8,9,10
    assert b.masked_sum(x).tolist() == [6.0, 9.0, 27.0]
    assert b.masked_mean(x).item() == pytest.approx((6 + 9 + 27) / 9)


@pytest.mark.parametrize(
    "field, kwargs, match",
    [
        ("mask", dict(mask=torch.ones(3)), "mask"),
        ("actions", dict(actions=torch.zeros(3, 5, dtype=torch.long)), "actions"),
        ("obs", dict(obs=torch.zeros(2, 4)), "obs"),
        ("rewards", dict(rewards=torch.zeros(3, 3)), "rewards"),
        ("log_probs", dict(log_probs=torch.zeros(4, 4)), "log_probs"),
        ("values", dict(values=[0.0]), "values"),
        ("next_values", dict(next_values=torch.zeros(3, 5)), "next_values"),
        ("next_values", dict(next_values=torch.full((3, 4), float("nan"))), "next_values: must be finite"),
        ("truncated", dict(truncated=torch.full((3, 4), 0.5)), "truncated: must hold only 0/1"),
        ("next_obs", dict(next_obs=torch.zeros(3, 5)), "next_obs"),
        ("group_size", dict(group_size=2), "group_size: 3 rows do not split into groups of 2"),
        ("group_size", dict(group_size=True), "group_size"),
    ],
)
def test_validation_names_the_field(field, kwargs, match):
    base = dict(obs=torch.zeros(3, 4), actions=torch.zeros(3, 4, dtype=torch.long), mask=torch.ones(3, 4))
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        TrajectoryBatch(**base)


def test_cat_pads_to_longest_and_keeps_common_fields():
    a = make_batch()
    b = TrajectoryBatch(obs=torch.full((2, 6), 7), actions=torch.ones(2, 6, dtype=torch.long),
                        mask=torch.ones(2, 6, dtype=torch.bool))
    c = TrajectoryBatch.cat([a, b])
    assert c.obs.shape == (5, 6) and c.horizon == 6
    assert c.n_steps == a.n_steps + b.n_steps
    assert torch.equal(c.obs[:3, :4], a.obs) and torch.all(c.obs[:3, 4:] == 0)
    assert not c.mask[:3, 4:].any()
    assert c.rewards is None  # b has no rewards, so the concatenation cannot have them
    with pytest.raises(ValueError, match="batches"):
        TrajectoryBatch.cat([])


def test_indexing_and_flat_steps():
    b = make_batch()
    sub = b[torch.tensor([2, 0])]
    assert sub.lengths.tolist() == [3, 4] and torch.equal(sub.obs[1], b.obs[0])
    obs, actions = b.flat_steps()
    assert obs.tolist() == [0, 1, 2, 3, 4, 5, 8, 9, 10]
    assert actions.tolist() == [o % 2 for o in obs.tolist()]


def test_replace_revalidates():
    b = make_batch()
    assert torch.equal(b.replace(actions=torch.zeros(3, 4, dtype=torch.long)).actions, torch.zeros(3, 4))
    with pytest.raises(ValueError, match="actions"):
        b.replace(actions=torch.zeros(3, 2, dtype=torch.long))


def test_cat_keeps_the_token_layout():
    """Context obs (prompt in the first P columns, step tokens in the last T) stay aligned."""
    a = TrajectoryBatch(obs=torch.tensor([[1, 2, 7, 8]]), actions=torch.tensor([[7, 8]]), mask=torch.ones(1, 2))
    b = TrajectoryBatch(obs=torch.tensor([[3, 4, 5, 9]]), actions=torch.tensor([[9]]), mask=torch.ones(1, 1))
    c = TrajectoryBatch.cat([a, b])
    assert c.obs.tolist() == [[0, 1, 2, 7, 8], [3, 4, 5, 9, 0]]
    P = c.obs.shape[1] - c.horizon
    assert torch.equal(c.obs[:, P:][c.mask], c.actions[c.mask])


def test_empirical_occupancy_is_a_discounted_count():
    from minirl.data import empirical_occupancy

    b = TrajectoryBatch(obs=torch.tensor([[0, 1, 1], [1, 0, 0]]), actions=torch.tensor([[1, 0, 1], [0, 0, 0]]),
                        mask=torch.tensor([[True, True, True], [True, True, False]]))
    rho = empirical_occupancy(b, 2, 2, gamma=0.5)
    # row 0: (0,1)@t0 w1, (1,0)@t1 w.5, (1,1)@t2 w.25; row 1: (1,0)@t0 w1, (0,0)@t1 w.5
    assert rho.tolist() == [[0.25, 0.5], [0.75, 0.125]]
    assert rho.sum() == pytest.approx((1 + 0.5 + 0.25 + 1 + 0.5) / 2)


def test_learner_fields_are_typed_and_travel_with_their_rows():
    """next_obs, next_values, terminated / truncated and group_size are fields, not info keys: they are
    selected by indexing, padded by cat, and episode_end is derived from the two flags."""
    B, T = 4, 3
    obs = torch.arange(B * T, dtype=torch.float32).reshape(B, T, 1)
    terminated = torch.zeros(B, T, dtype=torch.bool)
    terminated[0, 1] = True
    truncated = torch.zeros(B, T, dtype=torch.bool)
    truncated[2, 2] = True
    b = TrajectoryBatch(obs=obs, actions=torch.zeros(B, T, dtype=torch.long), mask=torch.ones(B, T),
                        terminated=terminated, truncated=truncated, next_obs=obs + 1, next_values=obs[..., 0] * 2,
                        group_size=2)
    assert torch.equal(b.episode_end, terminated | truncated) and b.info == {}
    rows = b[torch.tensor([2, 0])]
    assert torch.equal(rows.next_obs, (obs + 1)[[2, 0]]) and torch.equal(rows.next_values, obs[[2, 0], :, 0] * 2)
    assert torch.equal(rows.episode_end, (terminated | truncated)[[2, 0]])
    assert rows.group_size is None  # selected rows no longer form consecutive groups
    short = TrajectoryBatch(obs=obs[:2, :2], actions=torch.zeros(2, 2, dtype=torch.long), mask=torch.ones(2, 2),
                            terminated=terminated[:2, :2], truncated=truncated[:2, :2], next_obs=obs[:2, :2] + 1,
                            next_values=torch.ones(2, 2), group_size=2)
    both = TrajectoryBatch.cat([b, short])
    assert both.group_size == 2 and both.next_obs.shape == (6, 3, 1)
    assert torch.equal(both.next_obs[4:, 2], torch.zeros(2, 1)) and not both.mask[4:, 2].any()
    assert torch.equal(both.next_values[4:, :2], torch.ones(2, 2)) and both.truncated.shape == (6, 3)
    assert TrajectoryBatch.cat([b, short.replace(group_size=None)]).group_size is None
