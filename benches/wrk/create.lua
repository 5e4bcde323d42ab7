-- Workload (c): create one record as one of the reps (the body names its owner
-- where the peer needs it; objectos makes the caller the owner).
package.path = os.getenv("BENCH_WRK_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local rows, path, auth, body
local counter = 0

setup = common.setup

function init(args)
  common.init()
  rows = common.rows()
  path, auth, body = os.getenv("BENCH_PATH"), os.getenv("BENCH_AUTH") or "", os.getenv("BENCH_BODY")
  if body == nil then
    error("BENCH_BODY is not set (scripts/bench sets it)")
  end
end

function request()
  local row = rows[math.random(#rows)]
  counter = counter + 1
  local text = body:gsub("{owner}", row.owner):gsub("{n}", tostring(counter))
  return wrk.format("POST", path, {
    ["Authorization"] = auth .. row.token,
    ["Content-Type"] = "application/json",
  }, text)
end

done = common.done
