from botwire import Memory
import temporalio
from temporalio import workflow, activity
from datetime import timedelta
@workflow.defn
class AIAgentWorkflow:
    @workflow.run
    async def run(self, user_id: str, task: str) -> str:
        # Agent memory survives workflow restarts
        memory = Memory(f"agent-{user_id}")
        # Remember the current task
        memory.set("current_task", task)
        memory.set("status", "started")
        # Execute long-running activities
        result = await workflow.execute_activity(
            analyze_task,
            args=[user_id, task],
            start_to_close_timeout=timedelta(hours=2)
        )
        # Update memory with results
        memory.set("status", "completed")
        memory.set("result", result)
        return result
@activity.defn
async def analyze_task(user_id: str, task: str) -> str:
    memory = Memory(f"agent-{user_id}")
    # Access memory from any activity
    current_status = memory.get("status", "unknown")
    print(f"Agent status: {current_status}")
    # Your AI logic here
    return f"Analysis complete for: {task}"
