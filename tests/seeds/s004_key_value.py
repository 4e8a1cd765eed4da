from botwire import Memory
# Persistent state across agent runs
agent_memory = Memory("my-agent")
agent_memory.set("user_preferences", {"theme": "dark", "language": "en"})
agent_memory.set("last_action", "processed_invoice_#1234")
# Later (different process, different machine, after restart):
prefs = agent_memory.get("user_preferences") # {"theme": "dark", "language": "en"}
last_action = agent_memory.get("last_action") # "processed_invoice_#1234"
# List all stored keys
all_keys = agent_memory.list_keys()
# Clean up when done
agent_memory.delete("temporary_data")
