-- S5's background load: POST /api/v1/auth/login as a random seeded user (user2..user<N>,
-- N from BENCH_USERS), so every request verifies a real argon2id hash.
package.path = (os.getenv("BENCH_LIB") or "bench/lib") .. "/?.lua;" .. package.path
local common = require("common")

local users = tonumber(os.getenv("BENCH_USERS") or "1000")
local threads = 0

function setup(thread)
  thread:set("thread_number", threads)
  threads = threads + 1
end

function init(args)
  common.seed(100 + thread_number)
end

function request()
  local n = math.random(2, users - 1)
  return wrk.format("POST", "/api/v1/auth/login", { ["Content-Type"] = "application/json" },
    '{"email":"user' .. n .. '@example.com","password":"demo-user-password"}')
end

done = common.done
