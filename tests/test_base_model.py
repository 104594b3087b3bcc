"""llmtrack.pipelines.base.BaseModel: one validated answer to "which base model", the same weights and
cache entry as the call it stands for."""

import pytest
import torch

from llmtrack.pipelines.base import BaseModel, pretrain_base
from llmtrack.tasks import SortTask
from minirl.algos import BCConfig

TINY_BC = BCConfig(n_updates=8, batch_size=16, lr=3e-3)


def test_build_is_pretrain_base_with_the_spec_fields(tmp_path):
    task = SortTask(min_len=2, max_len=4)
    spec = BaseModel("nano", "gpt2", seed=3, n_sequences=64, bc=TINY_BC)
    built = spec.build(task, cache_dir=tmp_path)
    assert spec.checkpoint_path(task, tmp_path).is_dir()  # the entry build wrote is the one it names
    direct = pretrain_base(task, "nano", "gpt2", 3, 64, TINY_BC, cache=False)
    for a, b in zip(built.model.parameters(), direct.model.parameters(), strict=True):
        assert torch.equal(a, b)
    other = BaseModel("nano", "gpt2", seed=4, n_sequences=64, bc=TINY_BC)
    assert other.checkpoint_path(task, tmp_path) != spec.checkpoint_path(task, tmp_path)


@pytest.mark.parametrize("fields, field", [(dict(size="huge"), "size"), (dict(family="bert"), "family"),
                                           (dict(seed=-1), "seed"), (dict(seed=2**32), "seed"),
                                           (dict(n_sequences=0), "n_sequences"), (dict(bc={"lr": 1}), "bc")])
def test_bad_spec_is_refused_naming_the_field(fields, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        BaseModel(**fields)
