memory = Memory("agent-123")
# List all stored keys
all_keys = memory.list_keys()
print(f"Stored keys: {all_keys}")
# Delete specific memory
memory.delete("temporary_data")
# Memory automatically handles concurrent access across processes
