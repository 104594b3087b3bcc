"""Word-level tokenizers for toy languages, built with the ``tokenizers`` library.

Every token is a whole word; the vocabulary is the task's word list plus five special
tokens. The result is a ``transformers.PreTrainedTokenizerFast`` (it prints as
``TokenizersBackend`` in transformers 5), so it saves, loads and pads like any other.

Special tokens (fixed ids, so tables and tests can rely on them):
    [PAD] 0   padding inside batches (never attended to)
    [BOS] 1   prepended to every prompt
    [EOS] 2   ends a response; a state containing it is absorbing (survey Table 2)
    [MASK] 3  an empty slot of the context window, as in the survey's worked example
    [UNK] 4   anything outside the vocabulary
"""

from __future__ import annotations

from typing import Sequence

from tokenizers import Tokenizer, models, pre_tokenizers

SPECIAL_TOKENS = ("[PAD]", "[BOS]", "[EOS]", "[MASK]", "[UNK]")
PAD, BOS, EOS, MASK, UNK = range(5)

__all__ = ["SPECIAL_TOKENS", "PAD", "BOS", "EOS", "MASK", "UNK", "word_tokenizer", "check_tokenizer", "check_same_tokens"]


def word_tokenizer(words: Sequence[str]):
    """A word-level tokenizer over ``words`` (ids 5, 6, ... in order) plus the special tokens."""
    from transformers import PreTrainedTokenizerFast

    words = list(words)
    if not words:
        raise ValueError("words: the vocabulary must not be empty")
    if len(set(words)) != len(words):
        raise ValueError("words: must be unique")
    bad = [w for w in words if not w or any(c.isspace() for c in w) or w in SPECIAL_TOKENS]
    if bad:
        raise ValueError(f"words: must be non-empty, contain no whitespace and not be special tokens: {bad[:3]}")
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *words])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", bos_token="[BOS]", eos_token="[EOS]",
        mask_token="[MASK]", unk_token="[UNK]", padding_side="left",
    )


def check_tokenizer(tokenizer) -> None:
    """Refuse a tokenizer the token MDP cannot use: it needs EOS (absorbing states) and PAD."""
    for name in ("eos_token_id", "pad_token_id"):
        if getattr(tokenizer, name, None) is None:
            raise ValueError(f"tokenizer: has no {name.removesuffix('_id').replace('_', ' ')} ({name} is None)")


def check_same_tokens(tokenizer, reference, field: str = "checkpoint", what: str = "the task") -> None:
    """Refuse a ``tokenizer`` whose ids mean other words than ``reference``'s, naming ``field``.

    A model's ids are only meaningful through its tokenizer: a checkpoint whose vocabulary has the
    right size but another word at some id would be trained and scored on the wrong tokens. Both
    vocabularies are compared id by id (the first difference is reported).
    """
    ours = reference.convert_ids_to_tokens(list(range(len(reference))))
    if len(tokenizer) != len(reference):
        raise ValueError(f"{field}: the tokenizer has {len(tokenizer)} tokens, {what} {len(reference)}")
    theirs = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    for i, (a, b) in enumerate(zip(theirs, ours)):
        if a != b:
            raise ValueError(f"{field}: the tokenizer's token {i} is {a!r} where {what} has {b!r}; the ids would "
                             "mean other words (save the checkpoint with the task's tokenizer)")
