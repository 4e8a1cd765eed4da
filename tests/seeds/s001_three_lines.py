from botwire import Memory
# Create persistent memory namespace
memory = Memory("agent-session-123")
# Store and retrieve across restarts
memory.set("user_name", "Sarah")
memory.set("preferred_model", "gpt-4")
# Works after process restart
name = memory.get("user_name") # "Sarah"
model = memory.get("preferred_model", "gpt-3.5-turbo") # fallback default
