-- GET <BENCH_PREFIX><id> with an id drawn at random, per request, from the file BENCH_IDS_FILE
-- (S1, S2 and the baselines B0/B1). BENCH_PREFIX defaults to the service's /api/v1/markets/.
package.path = (os.getenv("BENCH_LIB") or "bench/lib") .. "/?.lua;" .. package.path
local common = require("common")

local prefix = os.getenv("BENCH_PREFIX") or "/api/v1/markets/"
local ids
local threads = 0

function setup(thread)
  thread:set("thread_number", threads)
  threads = threads + 1
end

function init(args)
  ids = common.lines(os.getenv("BENCH_IDS_FILE"))
  common.seed(thread_number)
end

function request()
  return wrk.format("GET", prefix .. ids[math.random(#ids)])
end

done = common.done
