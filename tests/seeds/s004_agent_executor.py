from langchain.agents import AgentExecutor, create_react_agent
from langchain_community.chat_models import ChatOpenAI
from langchain.memory import ConversationBufferMemory
from botwire import BotWireChatHistory
# Persistent chat history that survives restarts
persistent_history = BotWireChatHistory(session_id="user-42")
memory = ConversationBufferMemory(
    chat_memory=persistent_history,
    return_messages=True
)
llm = ChatOpenAI(temperature=0)
agent_executor = AgentExecutor.from_agent_and_tools(
    agent=create_react_agent(llm, tools, prompt),
    tools=tools,
    memory=memory
)
