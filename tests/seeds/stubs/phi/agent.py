"""Stand-in for ``phi.agent.Agent``: answers without an LLM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class RunResponse:
    content: str


class Agent:
    def __init__(self, model: Any = None, system_prompt: str = "", **_: Any) -> None:
        self.model = model
        self.system_prompt = system_prompt

    def run(self, message: str) -> RunResponse:
        return RunResponse(content=f"reply to: {message}")
