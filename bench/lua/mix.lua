-- 90% GETs / 10% PUTs over a set of existing keys. args: namespace, number of keys.
local gets, puts = {}, {}

function init(args)
   local ns = args[1] or "bench"
   local nkeys = tonumber(args[2] or "1000")
   local body = '{"value":"' .. string.rep("x", 198) .. '"}'
   for i = 1, nkeys do
      local path = "/memory/" .. ns .. "/m-k" .. i
      gets[i] = wrk.format("GET", path)
      puts[i] = wrk.format("PUT", path, { ["Content-Type"] = "application/json" }, body)
   end
   math.randomseed(id * 7919)
end

function request()
   local i = math.random(#gets)
   if math.random(10) == 1 then
      return puts[i]
   end
   return gets[i]
end
