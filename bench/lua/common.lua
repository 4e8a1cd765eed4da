-- Shared by every scenario (the runner prepends this file to the scenario's script).
-- Each thread gets an id; done() prints one JSON line the runner parses.
-- BENCH_AUTHORIZATION (set by the runner): an Authorization header sent with every request.
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization and authorization ~= "" then
   wrk.headers["Authorization"] = authorization
end
local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("id", #threads)
end

conflicts = 0
increments = 0

function done(summary, latency, requests)
   local c, inc = 0, 0
   for _, t in ipairs(threads) do
      c = c + (t:get("conflicts") or 0)
      inc = inc + (t:get("increments") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,'
         .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,'
         .. '"conflicts":%d,"increments":%d}\n',
      summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      latency.mean, c, inc))
end
