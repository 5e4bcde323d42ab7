-- Workload (b): one record by id, one the requesting rep may read.
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
