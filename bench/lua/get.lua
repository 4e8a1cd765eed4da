-- GETs of one existing key. args: namespace, key.
local req

function init(args)
   req = wrk.format("GET", "/memory/" .. (args[1] or "bench") .. "/" .. (args[2] or "hot"))
end

function request()
   return req
end
