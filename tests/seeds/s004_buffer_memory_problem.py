from langchain.memory import ConversationBufferMemory
from langchain.agents import create_react_agent
# This memory dies when the script exits
memory = ConversationBufferMemory()
# Agent conversations don't persist anywhere
