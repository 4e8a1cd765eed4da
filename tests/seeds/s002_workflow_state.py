from botwire import Memory
# Different namespaces for isolation
user_memory = Memory("user-alice")
session_memory = Memory("session-abc123")
agent_memory = Memory("crew-planning-agent")
# Store complex objects (automatically serialized)
agent_memory.set("workflow_state", {
    "current_step": 3,
    "completed_tasks": ["research", "outline"],
    "pending_tasks": ["draft", "review"],
    "context": {"topic": "serverless patterns"}
})
# Retrieve with defaults
workflow = agent_memory.get("workflow_state", {"current_step": 0})
# List all keys in namespace
all_keys = agent_memory.list()
print(f"Agent has {len(all_keys)} memories")
# Clean up old data
agent_memory.delete("temporary_calculation")
