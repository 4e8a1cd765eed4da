from langchain.agents import create_openai_functions_agent
from langchain_openai import ChatOpenAI
from botwire import BotWireChatHistory
def vercel_function(request):
    session_id = request.headers.get("x-session-id")
    # Persistent chat history across Vercel deployments
    history = BotWireChatHistory(session_id=f"chat-{session_id}")
    llm = ChatOpenAI()
    agent = create_openai_functions_agent(
        llm=llm,
        tools=tools,
        chat_history=history
    )
    response = agent.invoke({"input": request.json["message"]})
    return {"response": response["output"]}
