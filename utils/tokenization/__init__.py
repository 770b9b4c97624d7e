"""Re-exports for ``utils.tokenization.*``: the built-in tokenizers (see trainforge.data.tokenizers)."""

from trainforge.data.tokenizers import BPETokenizer, ByteTokenizer, CharTokenizer, load_tokenizer, save_tokenizer

__all__ = ["BPETokenizer", "ByteTokenizer", "CharTokenizer", "load_tokenizer", "save_tokenizer"]
