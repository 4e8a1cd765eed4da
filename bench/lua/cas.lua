-- Compare-and-set increments of one hot counter: GET it, then PUT value + 1 with If-Match on
-- the version read. A 409 is a lost race (counted as a conflict, not an error); the next request
-- of that connection reads again. args: namespace, key.
local path, get_req
local tokens = {}  -- (version, value) pairs read by GETs, each spent by one PUT

function init(args)
   path = "/memory/" .. (args[1] or "bench") .. "/" .. (args[2] or "counter")
   get_req = wrk.format("GET", path)
end

function request()
   local t = table.remove(tokens)
   if t then
      local headers = { ["Content-Type"] = "application/json", ["If-Match"] = '"' .. t[1] .. '"' }
      return wrk.format("PUT", path, headers, '{"value":' .. (t[2] + 1) .. '}')
   end
   return get_req
end

function response(status, headers, body)
   if status == 200 then
      if body:find('"stored"', 1, true) then
         increments = increments + 1
      else
         local version = body:match('"version"%s*:%s*(%d+)')
         local value = tonumber(body:match('"value"%s*:%s*(%-?%d+)')) or 0
         if version then
            table.insert(tokens, { version, value })
         end
      end
   elseif status == 409 then
      conflicts = conflicts + 1
   end
end
