"""Real checkpoints (issue 16): a foreign tokenizer layout, pad = EOS, a missing tokenizer, vocabulary
mismatches and models without position ids are refused before any work, each naming the field."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from torch import nn

from llmtrack.models import build_model, check_checkpoint_tokenizer, save_model
from llmtrack.policy import LMPolicy, check_same_vocabulary
from llmtrack.tokenizer import word_tokenizer

WORDS = "the sky is blue red".split()


def foreign_tokenizer(specials_last: bool = True, pad_is_eos: bool = False):
    """A word-level tokenizer in another layout: the words first and the specials after them (as
    most real vocabularies have it), or GPT-2's single <|endoftext|> doubling as pad."""
    from transformers import PreTrainedTokenizerFast

    if pad_is_eos:
        vocab = {w: i for i, w in enumerate([*WORDS, "<unk>", "<|endoftext|>"])}
        core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
        core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                       unk_token="<unk>")
    specials = ["<pad>", "<s>", "</s>", "<mask>", "<unk>"]
    order = [*WORDS, *specials] if specials_last else [*specials, *WORDS]
    core = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(order)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   mask_token="<mask>", unk_token="<unk>")


def test_our_own_layout_passes(tmp_path):
    tok = word_tokenizer(WORDS)
    path = save_model(build_model("nano", len(tok)), tmp_path / "ours", tokenizer=tok)
    assert len(check_checkpoint_tokenizer(path, vocab_size=len(tok))) == len(tok)
    with pytest.raises(ValueError, match=r"checkpoint: the model's vocab_size is 10, the other side needs 12"):
        check_checkpoint_tokenizer(path, vocab_size=12)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_a_checkpoint_with_another_tokenizer_layout_is_refused_naming_the_token(tmp_path, family):
    tok = foreign_tokenizer()
    path = save_model(build_model("nano", len(tok), family=family), tmp_path / "foreign", tokenizer=tok)
    with pytest.raises(ValueError, match=r"checkpoint: the tokenizer's pad_token_id is 5, .* needs 0"):
        check_checkpoint_tokenizer(path)


def test_pad_equal_to_eos_is_refused(tmp_path):
    tok = foreign_tokenizer(pad_is_eos=True)
    path = save_model(build_model("nano", len(tok)), tmp_path / "gpt2like", tokenizer=tok)
    with pytest.raises(ValueError, match=r"checkpoint: .*pad_token_id equals its eos_token_id \(6\).*never learns to stop"):
        check_checkpoint_tokenizer(path)


def test_a_checkpoint_without_a_tokenizer_or_with_too_small_a_model_is_refused(tmp_path):
    bare = save_model(build_model("nano", 10), tmp_path / "bare")
    with pytest.raises(ValueError, match=r"teacher: .* no tokenizer"):
        check_checkpoint_tokenizer(bare, field="teacher")
    tok = word_tokenizer(WORDS)
    small = save_model(build_model("nano", len(tok) - 2), tmp_path / "small", tokenizer=tok)
    with pytest.raises(ValueError, match=r"checkpoint: the tokenizer has 10 tokens but the model's vocab_size is 8"):
        check_checkpoint_tokenizer(small)


def test_policy_pairs_must_share_the_vocabulary_and_models_must_take_position_ids():
    a = LMPolicy(build_model("nano", 10), device="cpu")
    b = LMPolicy(build_model("nano", 12), device="cpu")
    check_same_vocabulary(a, LMPolicy(build_model("nano", 10, seed=1), device="cpu"))
    with pytest.raises(ValueError, match=r"teacher: has a vocabulary of 12 tokens, the policy 10"):
        check_same_vocabulary(a, b, field="teacher")

    class NoPositions(nn.Module):  # an LM that cannot be told where left-padded tokens sit
        def __init__(self):
            super().__init__()
            self.config = build_model("nano", 10).config
            self.emb = nn.Embedding(10, 4)

        def forward(self, input_ids, attention_mask=None):
            return self.emb(input_ids)

    with pytest.raises(ValueError, match=r"model: NoPositions.forward takes no position_ids"):
        LMPolicy(NoPositions(), device="cpu")
    assert torch.is_tensor(a.sample(torch.tensor([[5, 6]]))[0])


def test_sft_checkpoint_takes_a_foreign_saved_model_with_the_task_tokens_and_refuses_the_rest(tmp_path):
    """``llmtrack sft --checkpoint DIR`` runs every tokenizer check before any work: a checkpoint saved
    by plain HuggingFace calls with the task's tokenizer is taken; one without a tokenizer, with pad = EOS,
    or whose ids mean other words (same size, other words) is refused naming ``checkpoint``."""
    from llmtrack.pipelines.recipe import SFTRunConfig, make_pipeline_task

    task = make_pipeline_task("sort")
    model = build_model("nano", task.vocab_size, family="llama", seed=2)
    model.save_pretrained(tmp_path / "hf")  # not through save_model: no llmtrack mark
    task.tokenizer.save_pretrained(tmp_path / "hf")
    SFTRunConfig(task="sort", checkpoint=str(tmp_path / "hf"))

    model.save_pretrained(tmp_path / "bare")
    with pytest.raises(ValueError, match=r"^checkpoint: .* holds a model but no tokenizer"):
        SFTRunConfig(task="sort", checkpoint=str(tmp_path / "bare"))

    words = task.tokenizer.convert_ids_to_tokens(list(range(5, task.vocab_size)))
    shuffled = word_tokenizer([*words[1:], words[0]])  # the same words, one id off
    save_model(build_model("nano", task.vocab_size), tmp_path / "shuffled", tokenizer=shuffled)
    with pytest.raises(ValueError, match=rf"^checkpoint: the tokenizer's token 5 is {words[1]!r} where task 'sort' "
                                         rf"has {words[0]!r}"):
        SFTRunConfig(task="sort", checkpoint=str(tmp_path / "shuffled"))
