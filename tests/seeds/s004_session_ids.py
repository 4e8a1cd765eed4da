# Per-user memory
user_history = BotWireChatHistory(session_id=f"user-{user_id}")
# Per-conversation memory
conv_history = BotWireChatHistory(session_id=f"conv-{conversation_uuid}")
# Per-agent-type memory
support_history = BotWireChatHistory(session_id="support-agent-v2")
