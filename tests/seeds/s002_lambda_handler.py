from botwire import Memory
import json
def lambda_handler(event, context):
    # Create memory scoped to this user
    memory = Memory(f"user-{event['user_id']}")
    # Get conversation context
    chat_history = memory.get("chat_history") or []
    user_preferences = memory.get("preferences") or {}
    # Process the message with context
    response = process_message(
        event['message'],
        chat_history,
        user_preferences
    )
    # Save updated state
    chat_history.append({
        "user": event['message'],
        "assistant": response,
        "timestamp": context.aws_request_id
    })
    memory.set("chat_history", chat_history)
    memory.set("last_interaction", {"timestamp": "2024-01-15"})
    return {"response": response}
