-- Workloads (a), (a2) and (a3): a page of records (BENCH_PATH: the filter, the order), as one of the reps.
package.path = os.getenv("BENCH_WRK_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local requests

setup = common.setup

function init(args)
  common.init()
  requests = common.requests("GET")
end

function request()
  return requests[math.random(#requests)]
end

done = common.done
