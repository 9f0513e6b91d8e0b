-- S4: POST /api/v1/markets/{id}/positions as many signed-in users, 1.00 credit on a random
-- active market. Tokens (file BENCH_TOKENS_FILE, one per user) are dealt to the wrk threads
-- in turn and each thread rotates through its own, so requests in flight rarely wait on the same
-- user's row lock. Markets: BENCH_ACTIVE_IDS_FILE. No Idempotency-Key (it is optional).
package.path = (os.getenv("BENCH_LIB") or "bench/lib") .. "/?.lua;" .. package.path
local common = require("common")

local threads = 0
local tokens, ids
local sent = 0

function setup(thread)
  thread:set("thread_number", threads)
  threads = threads + 1
  thread:set("thread_count", tonumber(os.getenv("BENCH_WRK_THREADS") or "1"))
end

function init(args)
  local all = common.lines(os.getenv("BENCH_TOKENS_FILE"))
  tokens = {}
  for i, token in ipairs(all) do
    if (i - 1) % thread_count == thread_number then tokens[#tokens + 1] = token end
  end
  assert(#tokens > 0, "fewer tokens than wrk threads")
  ids = common.lines(os.getenv("BENCH_ACTIVE_IDS_FILE"))
  common.seed(thread_number)
end

function request()
  sent = sent + 1
  local token = tokens[sent % #tokens + 1]
  local side = (sent % 2 == 0) and "yes" or "no"
  return wrk.format("POST", "/api/v1/markets/" .. ids[math.random(#ids)] .. "/positions", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }, '{"side":"' .. side .. '","amount":"1.00"}')
end

done = common.done
