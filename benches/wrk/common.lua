-- Shared by the workload scripts of scripts/bench (wrk 4, LuaJIT).
--
-- The harness writes one line per credential to the file named by
-- BENCH_CREDENTIALS: `token<TAB>owner id<TAB>id of a record that user may read`.
-- Every request picks one line at random, so the load is spread over all the
-- users' credentials. BENCH_AUTH is what goes before the token in the
-- Authorization header (`Bearer ` for objectos; PocketBase takes the bare token).
-- BENCH_PATH is the request path; `{id}` and `{owner}` in it and in BENCH_BODY
-- are replaced from the chosen line.

local common = {}

local function env(name)
  local value = os.getenv(name)
  if value == nil then
    error(name .. " is not set (scripts/bench sets it)")
  end
  return value
end

function common.rows()
  local rows = {}
  for line in io.lines(env("BENCH_CREDENTIALS")) do
    local token, owner, id = line:match("^([^\t]+)\t([^\t]*)\t([^\t]*)$")
    if token then
      rows[#rows + 1] = { token = token, owner = owner, id = id }
    end
  end
  if #rows == 0 then
    error("no credentials in " .. env("BENCH_CREDENTIALS"))
  end
  return rows
end

local function fill(template, row)
  return (template:gsub("{id}", row.id):gsub("{owner}", row.owner))
end

-- Every request of this workload, formatted once: a body that must differ per
-- request (a create's name) is made in `make` instead.
function common.requests(method)
  local path, auth = env("BENCH_PATH"), os.getenv("BENCH_AUTH") or ""
  local body = os.getenv("BENCH_BODY")
  local out = {}
  for i, row in ipairs(common.rows()) do
    local headers = { ["Authorization"] = auth .. row.token }
    if body then
      headers["Content-Type"] = "application/json"
    end
    out[i] = wrk.format(method, fill(path, row), headers, body and fill(body, row) or nil)
  end
  return out
end

-- Each thread gets its own random sequence (setup runs in the main state).
local threads = 0
function common.setup(thread)
  threads = threads + 1
  thread:set("seed", threads * 7919)
end

function common.init()
  math.randomseed(seed or 1)
end

-- One line the harness parses; latencies in microseconds.
function common.done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,'
      .. '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,'
      .. '"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end

return common
