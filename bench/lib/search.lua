-- GET /api/v1/markets/search?q=<query>&limit=20 with a query drawn at random, per request, from
-- the file BENCH_SEARCH_QUERIES (one URL-encoded query per line: a market's words, misspellings,
-- near-synonyms of the seeded markets). Q1 and Q2 of bench/run.
package.path = (os.getenv("BENCH_LIB") or "bench/lib") .. "/?.lua;" .. package.path
local common = require("common")

local queries
local threads = 0

function setup(thread)
  thread:set("thread_number", threads)
  threads = threads + 1
end

function init(args)
  queries = common.lines(os.getenv("BENCH_SEARCH_QUERIES"))
  common.seed(thread_number)
end

function request()
  return wrk.format("GET", "/api/v1/markets/search?limit=20&q=" .. queries[math.random(#queries)])
end

done = common.done
