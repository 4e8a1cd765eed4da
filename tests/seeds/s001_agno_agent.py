from phi.agent import Agent
from botwire import Memory
class PersistentAgnoAgent:
    def __init__(self, user_id, model="gpt-4"):
        self.user_id = user_id
        self.memory = Memory(f"agno-user-{user_id}")
        # Initialize agent with persistent context
        self.agent = Agent(
            model=model,
            system_prompt=self._build_system_prompt()
        )

    def _build_system_prompt(self):
        context = self.memory.get("user_context", {})
        base_prompt = "You are a helpful assistant."
        if context:
            base_prompt += f"\n\nUser context: {context}"
        return base_prompt

    def chat(self, message):
        # Get conversation history
        history = self.memory.get("conversation_history", [])
        # Add user message
        history.append({"role": "user", "content": message})
        # Get response from agent
        response = self.agent.run(message)
        # Store response
        history.append({"role": "assistant", "content": response.content})
        self.memory.set("conversation_history", history[-20:]) # Keep last 20 messages
        return response

    def learn_preference(self, key, value):
        context = self.memory.get("user_context", {})
        context[key] = value
        self.memory.set("user_context", context)
