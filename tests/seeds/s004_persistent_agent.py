from langchain.memory import ConversationBufferMemory
from botwire import BotWireChatHistory, Memory
class PersistentAgent:
    def __init__(self, session_id: str):
        # Chat history for conversation context
        self.chat_history = BotWireChatHistory(session_id=session_id)
        self.memory = ConversationBufferMemory(
            chat_memory=self.chat_history,
            return_messages=True
        )
        # Structured memory for agent state
        self.kv_memory = Memory(f"agent-{session_id}")

    def remember_fact(self, key: str, value: any):
        """Store structured data that survives restarts"""
        self.kv_memory.set(key, value)

    def recall_fact(self, key: str):
        """Retrieve persistent structured data"""
        return self.kv_memory.get(key)

    def get_conversation_memory(self):
        """Get LangChain-compatible memory for agent"""
        return self.memory
