class PersistentAgent:
    def __init__(self, user_id):
        self.memory = Memory(f"user-{user_id}")
        self.user_id = user_id

    def remember_preference(self, key, value):
        preferences = self.memory.get("preferences", {})
        preferences[key] = value
        self.memory.set("preferences", preferences)

    def get_context(self):
        return {
            "preferences": self.memory.get("preferences", {}),
            "history": self.memory.get("conversation_history", []),
            "session_count": self.memory.get("session_count", 0)
        }

    def increment_session(self):
        count = self.memory.get("session_count", 0)
        self.memory.set("session_count", count + 1)
