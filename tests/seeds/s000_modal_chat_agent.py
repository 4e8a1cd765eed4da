import modal
from botwire import Memory
app = modal.App("persistent-agent")
@app.function()
def chat_agent(user_id: str, message: str):
    # Each user gets isolated memory
    memory = Memory(f"user-{user_id}")
    # Retrieve conversation history
    history = memory.get("conversation") or []
    history.append({"role": "user", "content": message})
    # Your AI logic here
    response = generate_response(history)
    history.append({"role": "assistant", "content": response})
    # Persist for next time
    memory.set("conversation", history)
    memory.set("last_seen", datetime.now().isoformat())
    return response
