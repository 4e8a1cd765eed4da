from langchain_openai import ChatOpenAI

__all__ = ["ChatOpenAI"]
