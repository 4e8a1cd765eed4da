"""A small LangGraph conversation for the ``BotWireSaver`` tests, importable and runnable.

The graph: START -> agent -> END, or agent -> confirm -> END when the human's message starts
with "order" (``confirm`` interrupts until the graph is resumed with an answer). The agent is
deterministic: it answers ``#<n> heard <text>``, n counting the human messages so far, so a
test can tell a conversation that continued from one that started over.

As a process (what the restart tests start, ``BOTWIRE_URL`` pointing at the server)::

    python langgraph_chat.py THREAD say TEXT...      # one invoke per TEXT
    python langgraph_chat.py THREAD resume ANSWER    # resume the pending interrupt

prints ``{"messages": [...contents], "next": [...nodes]}`` as JSON after the last step.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, interrupt


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def agent(state: State) -> dict[str, Any]:
    humans = [m for m in state["messages"] if isinstance(m, HumanMessage)]
    return {"messages": [AIMessage(f"#{len(humans)} heard {humans[-1].content}")]}


def confirm(state: State) -> dict[str, Any]:
    answer = interrupt("Place the order?")
    return {"messages": [AIMessage(f"order {answer}")]}


def route(state: State) -> str:
    humans = [m for m in state["messages"] if isinstance(m, HumanMessage)]
    return "confirm" if str(humans[-1].content).startswith("order") else END


def build(checkpointer: Any) -> Any:
    graph = StateGraph(State)
    graph.add_node("agent", agent)
    graph.add_node("confirm", confirm)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route, ["confirm", END])
    graph.add_edge("confirm", END)
    return graph.compile(checkpointer=checkpointer)


def config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id}}


def say(app: Any, thread_id: str, text: str) -> Any:
    return app.invoke({"messages": [HumanMessage(text)]}, config(thread_id))


def contents(app: Any, thread_id: str) -> dict[str, Any]:
    state = app.get_state(config(thread_id))
    return {
        "messages": [m.content for m in state.values.get("messages", [])],
        "next": list(state.next),
    }


def main(argv: list[str]) -> None:
    from botwire.langgraph import BotWireSaver

    thread_id, mode, *texts = argv
    app = build(BotWireSaver())
    if mode == "say":
        for text in texts:
            say(app, thread_id, text)
    elif mode == "resume":
        app.invoke(Command(resume=texts[0]), config(thread_id))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(contents(app, thread_id)))


if __name__ == "__main__":
    main(sys.argv[1:])
