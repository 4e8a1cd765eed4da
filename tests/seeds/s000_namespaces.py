from botwire import Memory
# Different namespaces = isolated memory
user_memory = Memory("user-alice")
session_memory = Memory("session-xyz")
agent_memory = Memory("agent-research-bot")
# Store any JSON-serializable data
user_memory.set("preferences", {"language": "python", "style": "concise"})
user_memory.set("task_progress", {"step": 3, "completed": ["research", "outline"]})
# Retrieve with defaults
prefs = user_memory.get("preferences", {})
tasks = user_memory.get("active_tasks", [])
