from botwire import Memory
# Namespace isolates different agents/users
user_memory = Memory("user-42")
agent_memory = Memory("assistant-v2")
# Store any JSON-serializable data
user_memory.set("conversation_history", [
    {"role": "user", "content": "What's the weather?"},
    {"role": "assistant", "content": "I'll check that for you."}
])
# Retrieve with defaults
history = user_memory.get("conversation_history", [])
last_topic = user_memory.get("last_topic", "general")
# List all keys in namespace
all_keys = user_memory.list_keys()
print(f"Stored keys: {all_keys}")
# Delete specific memories
user_memory.delete("temporary_data")
