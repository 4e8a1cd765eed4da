"""Stand-in for ``temporalio``: decorators leave classes and functions as they are, and
``workflow.execute_activity`` runs the activity in-process."""
