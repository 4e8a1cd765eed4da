@workflow.defn
class MultiStepAIWorkflow:
    @workflow.run
    async def run(self, agent_id: str, steps: list[str]) -> dict:
        memory = Memory(f"workflow-{agent_id}")
        results = {}
        # Track progress through workflow steps
        completed_steps = memory.get("completed_steps", [])
        for step in steps:
            if step in completed_steps:
                # Skip already completed steps on replay
                results[step] = memory.get(f"result_{step}")
                continue
            # Execute step
            result = await workflow.execute_activity(
                process_step,
                args=[agent_id, step],
                start_to_close_timeout=timedelta(minutes=30)
            )
            # Persist result before continuing
            memory.set(f"result_{step}", result)
            completed_steps.append(step)
            memory.set("completed_steps", completed_steps)
            results[step] = result
        return results
