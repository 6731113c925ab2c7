"""A local OpenAI-compatible chat-completions server (``POST {base}/v1/chat/completions``).

It checks what a real provider would reject (bearer token, JSON body, ``messages`` of
``{role, content}``, the model name, numeric ``temperature``/``max_tokens``) and answers in the
OpenAI response shape. By default it plays an LLM judge: it answers ``{"value": "no", ...}``
when the last user message contains one of ``no_markers`` and ``{"value": "yes", ...}``
otherwise, so a test decides the verdict through the data it scores. Set ``answer`` to any
``(messages) -> str | Reply`` to play something else (a generator, a chatty judge, garbage, or
an error for some prompts only).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from typing import Any

from tests.fakes.http import FakeHttpServer, Reply, Request, route

FAKE_KEY = "sk-test-key"
ROLES = {"system", "user", "assistant", "tool", "developer"}
ALLOWED_KEYS = {"model", "messages", "temperature", "max_tokens", "top_p", "stop", "n", "seed", "response_format"}


def judge_answer(no_markers: tuple[str, ...]) -> Callable[[list[dict[str, Any]]], str]:
    def answer(messages: list[dict[str, Any]]) -> str:
        prompt = str(messages[-1].get("content", ""))
        if any(marker in prompt for marker in no_markers):
            return json.dumps({"value": "no", "rationale": "The fake judge found a 'no' marker."})
        return json.dumps({"value": "yes", "rationale": "The fake judge found no 'no' marker."})

    return answer


class FakeChatServer(FakeHttpServer):
    def __init__(self, *, token: str = FAKE_KEY, model: str = "judge-model", prefix: str = "/v1") -> None:
        super().__init__()
        self.token = token
        self.model = model
        self.prefix = prefix
        self.no_markers: tuple[str, ...] = ("[[no]]",)
        self.answer: Callable[[list[dict[str, Any]]], str | Reply] | None = None
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        return self.url + self.prefix

    def chat_calls(self) -> list[Request]:
        return self.calls("POST", f"{self.prefix}/chat/completions")

    @route("GET", r"/_fake/stats")
    def stats(self, request: Request) -> Reply:
        """Not an OpenAI route: lets a client in another process count what the fake served."""
        return Reply(200, {"chat_calls": len(self.chat_calls()), "max_in_flight": self.max_in_flight})

    @route("POST", r"(?P<prefix>.*)/chat/completions")
    def chat_completions(self, request: Request) -> Reply:
        if request.params["prefix"] != self.prefix:
            return self.not_found(request)
        if request.bearer != self.token:
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        body = request.json
        if not isinstance(body, dict):
            return _error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        unknown = set(body) - ALLOWED_KEYS
        if unknown:
            return _error(400, f"Unrecognized request argument supplied: {', '.join(sorted(unknown))}")
        if body.get("model") != self.model:
            return _error(404, f"The model `{body.get('model')}` does not exist.", code="model_not_found")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "'messages' must be a non-empty array")
        for message in messages:
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                return _error(400, f"Invalid message: {message!r}")
            if not isinstance(message.get("content"), str):
                return _error(400, "message content must be a string")
        for key in ("temperature", "max_tokens"):
            if key in body and not isinstance(body[key], int | float):
                return _error(400, f"{key} must be a number")
        content = (self.answer or judge_answer(self.no_markers))(messages)
        if isinstance(content, Reply):  # the answer function chose to fail this request
            return content
        return Reply(
            200,
            {
                "id": f"chatcmpl-{next(self._ids)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            },
        )


def _error(status: int, message: str, type_: str = "invalid_request_error", code: str | None = None) -> Reply:
    return Reply(status, {"error": {"message": message, "type": type_, "param": None, "code": code}})


def main() -> None:
    """Serve the fake in its own process (benchmarks: keeps it off the client's GIL); prints the base URL."""
    import argparse
    import threading

    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--model", default="judge-model")
    parser.add_argument("--token", default="sk-test-key")
    args = parser.parse_args()
    fake = FakeChatServer(token=args.token, model=args.model).start()
    fake.latency = args.latency_ms / 1000
    print(fake.base_url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
