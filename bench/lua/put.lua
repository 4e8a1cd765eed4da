-- Durable PUTs of a 200-byte JSON value, cycling over many keys per thread.
-- args: namespace, number of keys.
local reqs = {}
local n = 0

function init(args)
   local ns = args[1] or "bench"
   local nkeys = tonumber(args[2] or "10000")
   -- A JSON string of 198 characters plus its quotes: 200 bytes stored.
   local body = '{"value":"' .. string.rep("x", 198) .. '"}'
   for i = 1, nkeys do
      local headers = { ["Content-Type"] = "application/json" }
      reqs[i] = wrk.format("PUT", "/memory/" .. ns .. "/t" .. id .. "-k" .. i, headers, body)
   end
end

function request()
   n = n % #reqs + 1
   return reqs[n]
end
