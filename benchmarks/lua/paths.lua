-- wrk script for benchmarks/wrk.py: request paths from a file, report JSON from done().
-- env: BENCH_FIXED_PATH   one path for every request (no per-request Lua: cheapest for wrk)
--      BENCH_PIPELINE     with BENCH_FIXED_PATH: each connection sends this many requests at
--                         once (HTTP/1.1 pipelining) and waits for all their answers: wrk's
--                         CPU per request falls, so a 2-core box shows the servers' own scaling
--      BENCH_PATHS_FILE   one path per line; thread t of BENCH_THREADS takes lines t, t+T, ...
--                         and wraps around at the end
--      BENCH_ONCE=1       with BENCH_PATHS_FILE: each thread stops once every line of its
--                         share has been answered and prints BENCH_DONE (requests still in
--                         flight repeat the share's last line); wrk.py then ends the run
--      BENCH_STATUSES=1   count responses per status (costs wrk some CPU per response)
--      BENCH_DELAY_MS     pause per connection before each request (paced load); wrk takes
--                         whole milliseconds, so the fraction is dithered at random
-- done() prints one line: BENCH_JSON {"requests":…,"duration_us":…,"bytes":…,"errors":{…},
--                                      "curve":[[percentile, latency_us],…],"statuses":{…}}
local fixed = os.getenv("BENCH_FIXED_PATH")
local file = os.getenv("BENCH_PATHS_FILE")
local count_statuses = os.getenv("BENCH_STATUSES") == "1"
local once = os.getenv("BENCH_ONCE") == "1"
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("tid", #threads)
end

local pipeline = tonumber(os.getenv("BENCH_PIPELINE") or "1")

if fixed and pipeline > 1 then
  -- wrk counts the requests one call returns and writes them in one go (its pipeline.lua);
  -- built in init(): wrk.format adds the Host header only from then on
  local requests
  function init(args)
    local batch = {}
    for i = 1, pipeline do batch[i] = wrk.format("GET", fixed) end
    requests = table.concat(batch)
  end
  function request() return requests end
elseif fixed then
  wrk.path = fixed
else
  local paths = {}
  local idx = 0
  function init(args)
    for line in io.lines(file) do
      if #line > 0 then paths[#paths + 1] = line end
    end
    local first = (tid or 1) - 1
    -- this thread's share: lines tid, tid + T, ... (the last one it may request)
    share = math.floor((#paths - (tid or 1)) / nthreads) + 1
    last = first + (share - 1) * nthreads
    idx = first
    -- wrk calls request() once on the first thread to check the script: let that call
    -- take a step of its own, not the share's first line
    if (tid or 1) == 1 then idx = first - nthreads end
  end
  function request()
    local i = idx
    if once and i > last then i = last end
    idx = idx + nthreads
    return wrk.format("GET", paths[(i % #paths) + 1])
  end
end

local answered = 0
local function stop_when_done()
  answered = answered + 1
  if answered == share then
    io.write("BENCH_DONE\n")
    io.flush()
    wrk.thread:stop()
  end
end

local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if delay_ms > 0 then
  local whole = math.floor(delay_ms)
  local frac = delay_ms - whole
  function delay()
    if math.random() < frac then return whole + 1 end
    return whole
  end
end

if count_statuses or (once and not fixed) then
  statuses = {}
  function response(status, headers, body)
    if count_statuses then
      local k = tostring(status)
      statuses[k] = (statuses[k] or 0) + 1
    end
    if once and not fixed then stop_when_done() end
  end
end

local points = {10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 96, 97, 98, 99,
                99.5, 99.9, 99.95, 99.99}

function done(summary, latency, requests)
  local e = summary.errors
  local curve = {string.format("[0,%d]", latency.min)}
  for _, p in ipairs(points) do
    curve[#curve + 1] = string.format("[%g,%d]", p, latency:percentile(p))
  end
  curve[#curve + 1] = string.format("[100,%d]", latency.max)
  local merged = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if s then
      for k, v in pairs(s) do merged[k] = (merged[k] or 0) + v end
    end
  end
  local st = {}
  for k, v in pairs(merged) do st[#st + 1] = string.format('"%s":%d', k, v) end
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"curve":[%s],"statuses":{%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(curve, ","), table.concat(st, ",")))
end
