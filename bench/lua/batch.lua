-- Batches of set ops, a 200-byte JSON value each, cycling over many keys per thread.
-- args: namespace, ops per batch, number of distinct batches (ops x batches keys in all).
local reqs = {}
local n = 0

function init(args)
   local ns = args[1] or "bench"
   local ops = tonumber(args[2] or "100")
   local batches = tonumber(args[3] or "100")
   local value = '"' .. string.rep("x", 198) .. '"'
   local headers = { ["Content-Type"] = "application/json" }
   for b = 1, batches do
      local parts = {}
      for i = 1, ops do
         local key = "b" .. id .. "-k" .. ((b - 1) * ops + i)
         parts[i] = '{"op":"set","key":"' .. key .. '","value":' .. value .. '}'
      end
      local body = '{"ops":[' .. table.concat(parts, ",") .. ']}'
      reqs[b] = wrk.format("POST", "/namespaces/" .. ns .. "/batch", headers, body)
   end
end

function request()
   n = n % #reqs + 1
   return reqs[n]
end
