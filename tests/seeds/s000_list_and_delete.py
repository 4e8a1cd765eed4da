# See what's stored
all_keys = memory.list_keys() # Returns list of strings
# Clean up old sessions
memory.delete("temp_data")
# Bulk operations for complex agents
for key in memory.list_keys():
    if key.startswith("cache_"):
        memory.delete(key)
