from crewai import Agent
from botwire.memory import memory_tools
researcher = Agent(
    role="Researcher",
    tools=memory_tools("research-crew") + other_tools,
    memory=True # CrewAI's built-in memory + BotWire persistence
)
