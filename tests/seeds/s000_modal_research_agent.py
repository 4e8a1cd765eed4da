import modal
from botwire import Memory
from datetime import datetime, timedelta
app = modal.App("multi-memory-agent")
@app.function()
def research_agent(user_id: str, query: str):
    # User-specific long-term memory
    user_memory = Memory(f"user-{user_id}")
    # Session-specific working memory
    session_id = user_memory.get("current_session") or f"session-{int(time.time())}"
    session_memory = Memory(f"session-{session_id}")
    # Global agent knowledge
    global_memory = Memory("research-agent-global")
    # Track user research interests over time
    interests = user_memory.get("research_interests", [])
    if query not in interests:
        interests.append(query)
        user_memory.set("research_interests", interests[-10]) # Keep recent 10
    # Build session context
    session_context = session_memory.get("context", [])
    session_context.append(f"User query: {query}")
    # Use global learnings
    similar_queries = global_memory.get("query_patterns", {})
    # Your AI research logic here...
    result = perform_research(query, session_context, similar_queries)
    # Update all memory layers
    session_context.append(f"Research result: {result['summary']}")
    session_memory.set("context", session_context)
    session_memory.set("last_updated", datetime.now().isoformat())
    user_memory.set("current_session", session_id)
    user_memory.set("last_research", query)
    # Learn globally (anonymized)
    global_memory.set(f"pattern-{len(similar_queries)}", {
        "query_type": classify_query(query),
        "successful_approach": result['approach']
    })
    return result
