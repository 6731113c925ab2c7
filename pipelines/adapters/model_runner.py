"""Run one MLflow pyfunc model in a process of its own: ``python -m pipelines.adapters.model_runner PATH``.

Model code is not trusted with the application's keys, so the worker never loads it: it downloads
the model's files (no model code runs) and starts this process with an environment stripped of
secrets (``pipelines.adapters.outbound.environ_without_secrets``). The protocol is one JSON line each way on
the process's original stdout: first ``{"ready": true}`` or ``{"error": ...}`` after loading, then,
for each line of inputs (a JSON list of rows) on stdin, ``{"output": [...]}`` or ``{"error": ...}``.
Whatever the model prints goes to stderr, never into the protocol. Standard library and MLflow only:
nothing of the application is imported here.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO


def _outputs(output: Any) -> list[Any]:
    if hasattr(output, "to_dict"):
        output = output.to_dict(orient="records")
    elif hasattr(output, "tolist"):
        output = output.tolist()
    return list(output)


def serve(path: str, requests: TextIO, replies: TextIO) -> int:
    def reply(message: dict[str, Any]) -> None:
        replies.write(json.dumps(message, default=str) + "\n")
        replies.flush()

    try:
        import mlflow.pyfunc

        model = mlflow.pyfunc.load_model(path)
    except Exception as exc:  # the model's own code and files: report, never a traceback on the protocol
        reply({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    reply({"ready": True})
    for line in requests:
        try:
            inputs = json.loads(line)
            reply({"output": _outputs(model.predict(inputs))})
        except Exception as exc:  # one failed input fails only its own request
            reply({"error": f"{type(exc).__name__}: {exc}"})
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m pipelines.adapters.model_runner MODEL_PATH", file=sys.stderr)
        return 2
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the model's prints (and print() in libraries) land on stderr
    sys.stdout = sys.stderr
    return serve(argv[1], sys.stdin, replies)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
