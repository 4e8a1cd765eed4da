"""Stand-in for the parts of ``langchain`` (0.x) the seeds import."""
