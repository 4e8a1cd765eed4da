@workflow.defn
class PersistentChatWorkflow:
    @workflow.run
    async def run(self, session_id: str, message: str) -> str:
        memory = Memory(f"chat-{session_id}")
        # Check if this is a returning conversation
        conversation_count = memory.get("message_count", 0)
        user_name = memory.get("user_name", "Unknown")
        # Update conversation state
        memory.set("message_count", conversation_count + 1)
        memory.set("last_message", message)
        if conversation_count == 0:
            return f"Hello! I'm starting our conversation."
        else:
            return f"Welcome back {user_name}! This is message #{conversation_count + 1}"
