"""Encoded token ids are held as one int32 array with offsets (TokenRows): rows read back exactly,
slices and sums keep their order, and a split takes a few bytes per token, not a Python list's."""

import pickle

import numpy as np

from slimtune.data.tokenize import EncodedSplit, TokenRows, encode
from tests.helpers import build_tokenizer, make_texts


def test_token_rows_read_back_slice_add_and_compare_like_lists():
    rows = [[101, 7, 30000, 102], [101, 102], [], [101, 5, 102]]
    ids = TokenRows(rows)
    assert list(ids) == rows and [ids[i] for i in range(4)] == rows and ids[-1] == rows[-1]
    assert ids[1:3] == rows[1:3] and ids[::2] == rows[::2] and ids.take([3, 0]) == [rows[3], rows[0]]
    assert ids[:2] + ids[2:] == ids and ids + [[9]] == rows + [[9]] and [[9]] + ids == [[9]] + rows
    assert ids != rows[:3] and ids.take([-1, 0]) == [rows[-1], rows[0]]
    assert ids.flat.dtype == np.int32 and list(ids.lengths()) == [4, 2, 0, 3]
    assert pickle.loads(pickle.dumps(ids)) == rows  # shipped to Ray workers as two arrays
    split = EncodedSplit(rows, [0, 1, 0, 1])  # lists are accepted and held compactly
    assert isinstance(split.input_ids, TokenRows) and split[0] == (rows[0], 0, 0) and split.num_tokens() == 9


def test_encoding_in_chunks_equals_the_tokenizer_and_holds_four_bytes_a_token(monkeypatch):
    import slimtune.data.tokenize as tokenize

    tok = build_tokenizer()
    texts = list(make_texts(50)["text"])
    monkeypatch.setattr(tokenize, "ENCODE_CHUNK", 7)  # several chunks, the last one short
    split = encode(texts, [0] * len(texts), tok, 16)
    assert split.input_ids == tok(texts, truncation=True, max_length=16)["input_ids"]
    assert split.input_ids.flat.nbytes == 4 * split.num_tokens()
