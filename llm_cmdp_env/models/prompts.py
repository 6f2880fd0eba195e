"""Turning a question into prompt token ids: a plain template for base models, the chat template for
instruct models."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

PLAIN_PROMPT_TEMPLATE = "Question: {question}\nAnswer:"
"""The shipped models' format: they were trained on ``prompt + " " + solution + eos``."""

CHAT_INSTRUCTION = "{question}\nSolve step by step. Write the final answer on the last line as '#### <answer>'."
"""User message for instruct models (the verifier also understands ``\\boxed{}`` and "the answer is")."""


class PromptFormatter:
    """Encode questions with ``template``: ``"auto"``, ``"chat"``, ``"plain"`` or a ``{question}`` string."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, template: str = "auto") -> None:
        if not isinstance(template, str):
            raise TypeError(f"prompt_template must be a string, got {type(template).__name__}")
        has_chat = bool(getattr(tokenizer, "chat_template", None))
        if template == "auto":
            template = "chat" if has_chat else "plain"
        if template == "chat" and not has_chat:
            raise ValueError("prompt_template='chat' but the tokenizer has no chat template")
        if template not in ("chat", "plain") and "{question}" not in template:
            raise ValueError(
                "prompt_template must be 'auto', 'chat', 'plain' or a format string containing '{question}', "
                f"got {template!r}"
            )
        self.tokenizer = tokenizer
        self.template = template
        self._max_token_chars: int | None = None

    @property
    def max_token_chars(self) -> int:
        """An upper bound on the characters one token covers: the longest vocabulary entry's raw string (a
        byte-level entry has one character per byte, a SentencePiece one its text). So a text of more than
        ``k * max_token_chars`` characters needs more than ``k`` tokens: an over-long question is refused
        before tokenising it (a 50 MB line would otherwise cost minutes and gigabytes)."""
        if self._max_token_chars is None:
            vocab = self.tokenizer.get_vocab()
            self._max_token_chars = max(1, max((len(t) for t in vocab), default=1))
        return self._max_token_chars

    def text(self, question: str) -> str:
        """The prompt as text."""
        if self.template == "chat":
            messages = [{"role": "user", "content": CHAT_INSTRUCTION.format(question=question)}]
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        fmt = PLAIN_PROMPT_TEMPLATE if self.template == "plain" else self.template
        return fmt.replace("{question}", question)

    def encode(self, question: str) -> list[int]:
        """The prompt as token ids (the chat template already holds its special tokens)."""
        text = self.text(question)
        return list(self.tokenizer(text, add_special_tokens=self.template != "chat")["input_ids"])

    def encode_solution(self, solution: str) -> list[int]:
        """A worked solution as the completion a model trained on this format writes after the prompt (no EOS):
        ``" " + solution`` after a plain prompt (the shipped models' training rows), the bare solution after a
        chat template (the assistant turn starts on its own)."""
        text = solution if self.template == "chat" else " " + solution
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
